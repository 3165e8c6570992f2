"""Every command's ``--help`` and usage errors as a person sees them: the real commands, run as processes.

A usage error is one ``PROG: error: ...`` line and a ``try 'PROG --help'`` hint,
exit 2, with the likely meaning of a misspelt option or subcommand; ``--help``
shows no reST markup and an option's default once, only when it says something.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys

import pytest

from tests.support.serverutil import PROJECT_ROOT

#: every ``audioguard`` command's help
AUDIOGUARD_HELP = [
    [],
    ["weights"],
    ["weights", "download"],
    ["weights", "synthetic"],
    ["weights", "verify"],
    ["classify"],
    ["serve"],
    ["client"],
    ["monitor"],
    ["evaluate"],
    ["calibrate"],
]
#: an option line of argparse's help: two spaces, then the flags (and metavar)
_ENTRY = re.compile(r"^  (\S.*?)(?:\s{2,}|$)")
#: the fixed width the help is laid out for in these tests
COLUMNS = 80


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "COLUMNS": str(COLUMNS)},
    )


def audioguard(*args: str) -> subprocess.CompletedProcess[str]:
    return run("-m", "audioguard.cli", *args)


def option_entries(help_text: str) -> dict[str, str]:
    """Each argument's help text, on one line, by its flags (and metavar) as listed."""
    entries: dict[str, str] = {}
    current: str | None = None
    for line in help_text.splitlines():
        entry = _ENTRY.match(line)
        if entry:
            current = entry.group(1)
            entries[current] = line[entry.end() :].strip()
        elif current is not None and line.startswith("   "):
            entries[current] = f"{entries[current]} {line.strip()}".strip()
        else:
            current = None
    return entries


def assert_clean_help(help_text: str, where: str) -> dict[str, str]:
    """No reST markup, no empty or doubled default, none on an on/off switch; returns the entries."""
    assert "``" not in help_text, where
    entries = option_entries(help_text)
    assert entries, where
    for listed, text in entries.items():
        assert "(default: None)" not in text and "(default: )" not in text, (where, listed, text)
        assert text.count("(default:") <= 1, (where, listed, text)
        if listed.startswith("-") and " " not in listed.replace(", ", ","):  # a switch: no metavar
            assert "(default:" not in text, (where, listed, text)
    return entries


def _parsers() -> dict[str, argparse.ArgumentParser]:
    """Every parser of the ``audioguard`` command, by its program name."""
    from audioguard import calibrate_cli, client, evaluate_cli, local, monitor
    from audioguard.cli import build_parser

    found: dict[str, argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser) -> None:
        found[parser.prog] = parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    walk(sub)

    walk(build_parser())
    for module in (client, local, monitor, evaluate_cli, calibrate_cli):
        parser = module.build_parser()
        found[parser.prog] = parser
    return found


@pytest.mark.parametrize("command", AUDIOGUARD_HELP, ids=lambda c: " ".join(c) or "audioguard")
def test_help_has_no_markup_and_each_meaningful_default_once(command: list[str]) -> None:
    shown = audioguard(*command, "--help")
    assert shown.returncode == 0, shown.stderr
    prog = " ".join(["audioguard", *command])
    entries = assert_clean_help(shown.stdout, prog)
    # prose is reflowed to the terminal; only tables and examples keep their own lines
    assert max(map(len, shown.stdout.splitlines())) <= COLUMNS, shown.stdout

    parser = _parsers()[prog]
    assert parser.description, prog
    for action in parser._actions:
        if not action.option_strings or isinstance(action, argparse._HelpAction):
            continue
        assert action.help, (prog, action.dest)
        # one style: hyphens in every flag of the user-facing command
        assert all("_" not in flag for flag in action.option_strings), (prog, action.option_strings)
        [text] = [
            t for listed, t in entries.items() if listed.split()[0].rstrip(",") in action.option_strings
        ]
        # a switch (takes no value) has nothing to show; nor has an option without a default
        says_default = (
            action.nargs != 0 and action.default is not None and "default" not in action.help.lower()
        )
        appended = text.count("(default: ") - action.help.count("(default: ")
        assert appended == (1 if says_default else 0), (prog, action.dest, text)


def test_defaults_read_as_written_on_the_command_line() -> None:
    helps = {tuple(c): option_entries(audioguard(*c, "--help").stdout) for c in AUDIOGUARD_HELP}
    assert helps[("client",)]["--timeout TIMEOUT"].endswith("(default: 300)")
    assert helps[("weights", "synthetic")]["--only PARTS"].endswith("(default: vggish,pca,classifier)")
    assert helps[("classify",)]["--model-dir MODEL_DIR"].endswith("(default: models)")
    # the help states its own default: not followed by a second, empty one
    assert helps[("monitor",)]["--queue-chunks QUEUE_CHUNKS"].endswith(
        "(default: 5 s a source + its privacy window)"
    )
    assert helps[("client",)]["--grpc"] == "use v2 gRPC instead of REST"


@pytest.mark.slow  # each imports KServe (seconds)
@pytest.mark.parametrize("service", ["transformer", "predictor"])
def test_service_help_has_no_markup_and_each_meaningful_default_once(service: str) -> None:
    shown = run("-m", service, "--help")
    assert shown.returncode == 0, shown.stderr
    entries = assert_clean_help(shown.stdout, service)
    # a settings flag states its default with its variable, KServe's own flags get one appended
    assert entries["--http_port HTTP_PORT"].endswith("(default: 8080)")
    assert entries["--model_dir MODEL_DIR"].endswith("default /mnt/models]")
    # a flag that takes true/false: its default is worth saying
    assert entries["--enable_grpc ENABLE_GRPC"].endswith("(default: True)")


USAGE_ERRORS = [
    (
        ["classfy", "a.wav"],
        "audioguard",
        "argument COMMAND: invalid choice: 'classfy' (choose from 'weights', 'classify', 'serve', "
        "'client', 'monitor', 'evaluate', 'calibrate'); did you mean 'classify'?",
    ),
    (
        ["weights", "verfy", "models"],
        "audioguard weights",
        "argument ACTION: invalid choice: 'verfy' (choose from 'download', 'synthetic', 'verify'); "
        "did you mean 'verify'?",
    ),
    (
        ["classify", "a.wav", "--model_dri", "models"],
        "audioguard classify",
        "unrecognized option: --model_dri (did you mean --model-dir?)",
    ),
    (
        ["client", "a.wav", "--modle-name", "x"],
        "audioguard client",
        "unrecognized option: --modle-name (did you mean --model-name?)",
    ),
    (
        ["client", "a.wav", "--privacy", "scrambel"],
        "audioguard client",
        "argument --privacy: invalid choice: 'scrambel' (choose from 'none', 'dp_noise', 'scramble', "
        "'speech_mask'); did you mean 'scramble'?",
    ),
    (
        ["client", "a.wav", "--top_kk=3", "--jsn"],
        "audioguard client",
        "unrecognized options: --top_kk (did you mean --top-k?), --jsn (did you mean --json?)",
    ),
    (
        ["monitor", "--sources", "s.yaml", "--min-hit", "1"],
        "audioguard monitor",
        "unrecognized option: --min-hit (did you mean --min-hits?)",
    ),
    (
        ["weights", "synthetic", "--dest", "d", "--sed", "3"],
        "audioguard weights synthetic",
        "unrecognized option: --sed (did you mean --seed?)",
    ),
    (["weights", "download"], "audioguard weights download", "the following arguments are required: --dest"),
    (["weights", "verify", "a", "b"], "audioguard weights verify", "unrecognized arguments: b"),
    (
        ["client", "a.wav", "--top-k", "0"],
        "audioguard client",
        "argument --top-k: must be between 1 and 527, got 0",
    ),
]


@pytest.mark.parametrize(("argv", "prog", "message"), USAGE_ERRORS, ids=lambda v: " ".join(v)[:40])
def test_a_usage_error_is_one_line_and_a_hint(argv: list[str], prog: str, message: str) -> None:
    finished = audioguard(*argv)
    assert finished.returncode == 2
    assert finished.stdout == ""
    assert finished.stderr.splitlines() == [f"{prog}: error: {message}", f"try '{prog} --help'"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        # serve's own flag and the transformer's, in either spelling, as suggestions
        (["--http-prot", "5000"], "unrecognized option: --http-prot (did you mean --http-port?)"),
        (
            ["--privacy_minimun", "scramble"],
            "unrecognized option: --privacy_minimun (did you mean --privacy-minimum?)",
        ),
        (["models"], "unrecognized arguments: models"),
    ],
)
def test_serve_refuses_a_flag_nobody_knows_before_starting_anything(argv: list[str], message: str) -> None:
    """Flags serve does not know go to the transformer: one the transformer does not know either is
    refused at once, before the predictor loads its weights (it would log), not by the
    transformer's usage block afterwards."""
    finished = audioguard("serve", "--model-dir", str(PROJECT_ROOT / "models"), *argv)
    assert finished.returncode == 2
    assert finished.stderr.splitlines() == [
        f"audioguard serve: error: {message}",
        "try 'audioguard serve --help'",
    ]


@pytest.mark.slow  # each imports KServe (seconds)
@pytest.mark.parametrize(
    ("service", "argv", "message"),
    [
        ("transformer", ["--model_dri", "m"], "unrecognized option: --model_dri (did you mean --model_dir?)"),
        ("predictor", ["--http-port", "1"], "unrecognized option: --http-port (did you mean --http_port?)"),
        ("transformer", [], "--predictor_host is required (host:port of the predictor)"),
    ],
)
def test_a_service_usage_error_is_one_line_and_a_hint(service: str, argv: list[str], message: str) -> None:
    finished = run("-m", service, *argv)
    assert finished.returncode == 2
    prog = f"python -m {service}"
    assert finished.stderr.splitlines() == [f"{prog}: error: {message}", f"try '{prog} --help'"]
