"""The listening side from the settings: the sources (checked before any model loads) and the monitor.

Checked before the weights load (seconds to tens of seconds), each problem naming the source
and the field: the sources file itself (``load_sources``), the anomaly groups a source names
(``groups``, ``thresholds``), the environment variables its URL needs, its privacy against
the operator's minimum."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from contract.errors import AudioGuardError, InvalidConfiguration
from transformer.analysis.anomaly_groups import AnomalyGroup, load_anomaly_groups
from transformer.analysis.detectors import DETECTOR_GROUPS
from transformer.analysis.detectors.baseline import BaselineStore
from transformer.analysis.detectors.novelty import NoveltyStore
from transformer.analysis.detectors.voices import VoicesSettings
from transformer.analysis.events import LifecycleSettings
from transformer.analysis.labels import Labels
from transformer.analysis.modes import ModeBoard, ModesSpec, unknown_mode_groups
from transformer.monitor.loop import EmbedExamples, Monitor, RecordEvents
from transformer.monitor.loop import ScoreWindows as ScoreLiveWindows
from transformer.monitor.mode_keeper import RecordModes
from transformer.monitor.notices import Notify
from transformer.monitor.service import MonitorService
from transformer.monitor.source_state import unknown_groups
from transformer.monitor.sources import SourceSpec, load_sources_file
from transformer.monitor.window_scores import ObserveWindows
from transformer.privacy import PrivacyPolicy, PrivacyRequest
from transformer.settings import TransformerSettings
from transformer.wiring.configs import lifecycle, privacy_policy


def source_privacy(sources: Sequence[SourceSpec], policy: PrivacyPolicy) -> dict[str, PrivacyRequest]:
    """Each source's anonymisation with the operator's minimum applied, as to a request: a source
    naming no method gets the minimum; one naming a weaker method is upgraded, or refused
    (InvalidConfiguration, before anything starts) when the enforcement is "reject"."""
    chosen = {}
    for source in sources:
        try:
            chosen[source.name] = policy.enforce(policy.parse(source.privacy, source.privacy_params))
        except AudioGuardError as error:
            raise InvalidConfiguration(f"source {source.name}: {error.message}") from None
    return chosen


@dataclass(frozen=True)
class Listening:
    """The monitor's sources, read and checked before any model loads."""

    sources: tuple[SourceSpec, ...]
    privacy: dict[str, PrivacyRequest]
    modes: ModesSpec = field(default_factory=ModesSpec)


def listening(settings: TransformerSettings, sources_file: Path | None = None) -> Listening:
    """The sources of ``sources_file`` (default: the settings') with their privacy (InvalidConfiguration)."""
    path = sources_file or settings.sources_file
    if path is None:
        raise InvalidConfiguration("listening needs a sources file (sources_file)")
    document = load_sources_file(path)
    sources = tuple(document.sources)
    groups = load_anomaly_groups(settings.anomaly_groups_file)
    problems = [problem for source in sources for problem in unknown_groups(groups, source)]
    problems += unknown_mode_groups(document.modes, [group.name for group in groups] + list(DETECTOR_GROUPS))
    problems += [
        f"source {source.name}: url: environment variable {name} is not set"
        for source in sources
        for name in source.missing_variables()
    ]
    if problems:
        raise InvalidConfiguration(f"{path}: {'; '.join(problems)}")
    return Listening(sources, source_privacy(sources, privacy_policy(settings)), document.modes)


def monitor_service(
    settings: TransformerSettings,
    plan: Listening,
    *,
    embed: EmbedExamples,
    score: ScoreLiveWindows,
    record: RecordEvents,
    groups: Sequence[AnomalyGroup],
    labels: Labels,
    embedding_official: bool,
    queue_chunks: int | None = None,
    lifecycle_override: LifecycleSettings | None = None,
    hop: int | None = None,
    ffmpeg: str | None = None,
    notify: Notify | None = None,
    record_modes: RecordModes | None = None,
    observe: ObserveWindows | None = None,
) -> MonitorService:
    """The monitor over ``plan``'s sources: the service's detection settings, a fresh session."""
    session = str(uuid.uuid4())
    monitor = Monitor(
        plan.sources,
        embed=embed,
        score=score,
        record=record,
        groups=groups,
        labels=labels,
        lifecycle=lifecycle_override or lifecycle(settings),
        hop=hop or settings.monitor_hop,
        gate_dbfs=settings.loudness_gate_dbfs,
        analyzer_id=settings.analyzer_id,
        privacy=plan.privacy,
        session=session,
        embedding_official=embedding_official,
        sudden_loud=settings.sudden_loud_settings() if settings.sudden_loud else None,
        baselines=BaselineStore(settings.baselines_path),
        voices=VoicesSettings(settings.voices_min_speech_seconds) if settings.voices_while_armed else None,
        novelty=settings.novelty_settings() if settings.unusual_sound else None,
        novelty_store=NoveltyStore(settings.novelty_dir),
        modes=ModeBoard(
            plan.modes,
            {source.name: source.schedule for source in plan.sources},
            [group.name for group in groups] + list(DETECTOR_GROUPS),
        ),
        record_modes=record_modes,
        observe=observe,
    )
    return MonitorService(
        plan.sources,
        monitor,
        queue_chunks=settings.monitor_queue_chunks if queue_chunks is None else queue_chunks,
        ffmpeg=ffmpeg or settings.ffmpeg_path,
        session=session,
        notify=notify,
    )
