"""``audioguard monitor``: listen to live sources on this machine and print anomaly events.

Every source of the sources file (cameras over RTSP, HTTP streams, sound cards,
files, stdin; format in ``transformer.monitor.sources``) gets an ffmpeg capture
under its own supervisor; their audio goes through the service's front end,
VGGish and classifier in this process, and each anomaly event prints one line
when it starts and one when it ends (``--json``: one JSON record per line).
What happens to the sources goes to stderr, one line each with the local time (connected,
connection lost and the next try, failed, finished with what was heard, audio dropped, a
summary at the end), so that stdout holds the events alone. Ctrl-C (or SIGTERM) ends the
open events and stops; while the model loads, and at a second Ctrl-C, it exits at once.
Exit status: 0 when every source played out and all of it was analysed, 1 when a source
failed (at once when every source has) or a detection step failed, 2 for a bad sources file
or option, 130 (143) when stopped by Ctrl-C (SIGTERM). The audio stays in memory.

    audioguard monitor --sources sources.yaml --model-dir models
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import signal
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np

from audioguard.render import event_detail
from contract import cli_types
from contract.cli_style import CliParser, hyphenated, known_flags
from contract.errors import AudioGuardError
from contract.interrupts import exit_now, leave

if TYPE_CHECKING:
    from audioguard.offline import OfflineClassifier
    from transformer.monitor.notices import Notice
    from transformer.wiring import Listening


#: a stop still running after this long says why it waits, and how to quit at once
SLOW_STOP_SECONDS: Final = 1.0
SLOW_STOP: Final = (
    "stopping: the audio already captured is analysed, then the open events end; Ctrl-C again to quit at once"
)


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(prog="audioguard monitor", description=__doc__, allow_abbrev=False)
    parser.add_argument("--sources", type=Path, required=True, help="the sources file (YAML or JSON)")
    parser.add_argument(
        "--model-dir", type=Path, default=Path("models"), help="folder of the three model files"
    )
    parser.add_argument(
        "--hop", type=cli_types.hop, default=1, help="examples (0.96 s each) between two windows, 1-10"
    )
    from transformer.analysis.events import LifecycleSettings

    defaults = LifecycleSettings()
    parser.add_argument("--min-hits", type=int, default=defaults.min_hits, help="hits that start an event")
    parser.add_argument(
        "--within-hops", type=int, default=defaults.within_hops, help="... within this many hops"
    )
    parser.add_argument(
        "--max-not-heard",
        type=float,
        default=defaults.max_not_heard_seconds,
        help="seconds without a hit that end an event",
    )
    parser.add_argument(
        "--queue-chunks",
        type=int,
        default=None,
        help="audio chunks (0.1 s, all sources) held at most (default: 5 s a source + its privacy window)",
    )
    parser.add_argument("--ffmpeg", default="ffmpeg", help="the ffmpeg program")
    parser.add_argument("--json", action="store_true", help="print each start and end as a JSON record")
    return parser


def local_time(iso: object) -> str:
    """`` (19:04:11)``: an ISO 8601 UTC time of a record on this machine's clock, or nothing."""
    if not isinstance(iso, str):
        return ""
    return f" ({datetime.fromisoformat(iso).astimezone():%H:%M:%S})"


def say(notice: Notice) -> None:
    """A notice about the sources on stderr, with the local time it happened."""
    print(notice.line(f"{datetime.fromtimestamp(notice.at):%H:%M:%S}"), file=sys.stderr, flush=True)


def unopenable(plan: Listening) -> list[Notice] | None:
    """When every source is a file that cannot be opened: the failure of each (said before the
    model loads, as the captures would say it); else None."""
    from transformer.monitor.capture_errors import file_problem
    from transformer.monitor.notices import Notice
    from transformer.monitor.sources import file_path

    failures = []
    for source in plan.sources:
        problem = file_problem(file_path(source.resolved_url())) if source.kind == "file" else None
        if problem is None:
            return None
        failures.append(Notice("failed", source.name, "failed", f": {problem}", warning=True))
    return failures


def describe_change(record: dict[str, object]) -> str:
    """``START kitchen: Glass breaking [glass_break] at 12.48 s (19:04:11), peak 0.92: Shatter 0.92``:
    stream seconds, and the local wall-clock time when the source knows it."""
    classes = event_detail(record)
    if record["change"] == "start":
        when = f"at {record['start_seconds']:.2f} s{local_time(record.get('started_at'))}"
    else:
        span = f"{record['start_seconds']:.2f}-{record['end_seconds']:.2f} s"
        when = span + local_time(record.get("ended_at"))
    reason = f" ({record['reason']})" if record.get("reason") else ""
    return (
        f"{str(record['change']).upper():<5} {record['source']}: {record['label']} [{record['group']}] "
        f"{when}, peak {record['peak_score']:.2f}: {classes}{reason}"
    )


async def listen(args: argparse.Namespace) -> int:
    from contract.native_logs import native_stderr_to_debug
    from transformer import wiring
    from transformer.analysis.modes import ModeChange
    from transformer.analysis.record_context import RecordContext
    from transformer.analysis.records import event_record
    from transformer.analysis.types import PredictorScores

    loop = asyncio.get_running_loop()
    # nothing to save until the sources run: Ctrl-C exits at once, also while the load (in a
    # worker thread, so that the loop stays free to take the signal) sits in C code
    loop.add_signal_handler(signal.SIGINT, exit_now, signal.SIGINT)
    with native_stderr_to_debug("tensorflow"):  # the classifier's native banners are not output
        classifier = await asyncio.to_thread(_load_classifier, args.model_dir)
    worker = wiring.embedding_worker(classifier.settings, classifier.pipeline, "audioguard")

    async def score(windows: np.ndarray) -> PredictorScores:
        values = await asyncio.to_thread(classifier.classifier.predict, windows)
        return PredictorScores(values, classifier.weights.classifier_official)

    def show(changes: Sequence[object], context: RecordContext) -> None:
        for change in changes:
            record = event_record(change, context)  # type: ignore[arg-type]
            print(json.dumps(record) if args.json else describe_change(record), flush=True)

    def show_modes(changes: Sequence[ModeChange], context: RecordContext) -> None:
        if args.json:  # the JSON lines are event records only (one schema per stream)
            return
        for change in changes:
            groups = len(change.groups)
            print(
                f"MODE  {change.source}: {change.mode} (by {change.set_by}, {groups} groups watched)",
                flush=True,
            )

    service = wiring.monitor_service(
        classifier.settings,
        args.plan,
        embed=worker.embed_examples,
        score=score,
        record=show,
        groups=classifier.groups,
        labels=classifier.labels,
        embedding_official=classifier.weights.embedding_official,
        queue_chunks=args.queue_chunks,
        lifecycle_override=args.lifecycle,
        hop=args.hop,
        ffmpeg=args.ffmpeg,
        notify=say,
        record_modes=show_modes,
    )
    if not classifier.weights.official:
        print(f"WARNING: {classifier.weights.warning}", file=sys.stderr, flush=True)
    await service.start(register_metrics=False)
    stopping = asyncio.Event()
    stopped_by: list[int] = []

    def stop(signum: int) -> None:
        """The first signal ends the open events and stops; a second one exits at once."""
        stopped_by.append(signum)
        stopping.set()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, exit_now, sig)
        loop.call_later(SLOW_STOP_SECONDS, functools.partial(print, SLOW_STOP, file=sys.stderr, flush=True))

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop, sig)
    played_out = asyncio.create_task(service.wait_sources_done())
    interrupted = asyncio.create_task(stopping.wait())
    try:
        await asyncio.wait({played_out, interrupted}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        interrupted.cancel()
        await service.stop()
        played_out.cancel()
        worker.close()
    if stopped_by:  # 128 + the signal, as a shell reports a command it stopped; all is said, so
        # no waiting for a worker thread's model call or TensorFlow's teardown (seconds)
        leave(128 + stopped_by[0])
    # each failure was said when it happened (one line, the reason in words), each lost window in
    # its source's last line: either way something was not analysed
    failed = any(s.status.state == "failed" for s in service.supervisors)
    lost = any(service.monitor.heard(s.source.name).lost_windows for s in service.supervisors)
    return 1 if failed or lost else 0


def _load_classifier(model_dir: Path) -> OfflineClassifier:
    from audioguard.offline import OfflineClassifier

    return OfflineClassifier.from_model_dir(model_dir)


def main(argv: Sequence[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(hyphenated(argv, known_flags(parser)))
    # the settings, the sources file and the model folder are checked before the model loads
    from contract.assets import ALL_ASSETS, require_assets
    from transformer import wiring
    from transformer.analysis.events import LifecycleSettings
    from transformer.settings import TransformerSettings

    try:
        args.lifecycle = LifecycleSettings(args.min_hits, args.within_hops, args.max_not_heard)
    except ValueError as error:
        parser.error(str(error))
    try:
        # each source's anonymisation, the operator minimum (AUDIOGUARD_PRIVACY_MINIMUM) applied
        settings = TransformerSettings(**{"model_dir": args.model_dir})  # and AUDIOGUARD_* variables
        args.plan = wiring.listening(settings, args.sources)
        require_assets(args.model_dir, ALL_ASSETS)
        failures = unopenable(args.plan)
        if failures is not None:  # nothing could be listened to: said before the model loads
            for notice in failures:
                say(notice)
            return 1
        return asyncio.run(listen(args))
    except AudioGuardError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
