"""The sources file and the ffmpeg command of each kind of source."""

from __future__ import annotations

from pathlib import Path

import pytest

from contract.errors import InvalidConfiguration
from transformer.analysis.anomaly_groups import load_anomaly_groups
from transformer.monitor.ffmpeg import ffmpeg_command
from transformer.monitor.source_state import source_groups
from transformer.monitor.sources import (
    SourceSpec,
    file_path,
    load_sources,
    parse_sources,
    redacted,
    source_kind,
)
from transformer.settings import TransformerSettings
from transformer.wiring import privacy_policy, source_privacy


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("rtsp://10.0.0.7:554/stream", "rtsp"),
        ("rtsps://viewer:${PW}@10.0.0.7:7441/s", "rtsp"),
        ("http://radio.local/live.mp3", "http"),
        ("HTTPS://radio.local/live", "http"),
        ("file:/recordings/a.wav", "file"),
        ("/recordings/a.wav", "file"),
        ("night.flac", "file"),
        ("alsa:hw:1,0", "alsa"),
        ("pulse:default", "pulse"),
        ("stdin:", "stdin"),
    ],
)
def test_each_url_names_its_kind(url: str, kind: str) -> None:
    assert source_kind(url) == kind


def test_a_sources_file_is_read_with_credentials_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(
        "sources:\n"
        "  - name: kitchen-camera\n"
        "    url: rtsps://viewer:${KITCHEN_PASSWORD}@10.0.0.7:7441/stream\n"
        "    privacy: scramble\n"
        "    thresholds: {glass_break: 0.3}\n"
        "  - name: replay\n"
        "    url: file:/recordings/night.wav\n"
        "    realtime: false\n"
    )
    camera, replay = load_sources(path)
    assert (camera.kind, camera.privacy, camera.thresholds) == ("rtsp", "scramble", {"glass_break": 0.3})
    assert camera.resolved_url({"KITCHEN_PASSWORD": "s3cret"}) == "rtsps://viewer:s3cret@10.0.0.7:7441/stream"
    with pytest.raises(KeyError, match="KITCHEN_PASSWORD"):
        camera.resolved_url({})
    assert (replay.kind, replay.realtime) == ("file", False)


def test_a_relative_file_path_is_taken_from_the_sources_files_folder(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "sources.yaml"
    path.write_text(
        "sources:\n"
        "  - {name: a, url: 'file:night.wav'}\n"
        "  - {name: b, url: '../recordings/day.wav'}\n"
        "  - {name: c, url: 'file:/abs/c.wav'}\n"
        "  - {name: d, url: 'file:${RECORDINGS}/d.wav'}\n"
        "  - {name: e, url: '~/e.wav'}\n"
        "  - {name: f, url: 'pulse:default'}\n"
    )
    a, b, c, d, e, f = load_sources(path)
    assert a.url == f"file:{tmp_path / 'conf' / 'night.wav'}"
    assert b.url == f"file:{tmp_path / 'recordings' / 'day.wav'}"
    # absolute, from a variable, from the home folder, or no file: as written
    assert (c.url, d.url, e.url, f.url) == (
        "file:/abs/c.wav",
        "file:${RECORDINGS}/d.wav",
        "~/e.wav",
        "pulse:default",
    )
    assert file_path(e.url) == Path.home() / "e.wav" and file_path("file:///x/y.wav") == Path("/x/y.wav")
    # a document with no file behind it (the chart's ConfigMap) keeps the current directory's
    (g,) = parse_sources({"sources": [{"name": "g", "url": "file:night.wav"}]})
    assert g.url == "file:night.wav"


def test_every_problem_of_a_sources_file_is_named_at_once() -> None:
    document = {
        "sources": [
            {"name": "bad name!", "url": "ftp://x/y"},
            {"name": "a", "url": "pulse:default", "thresholds": {"scream": 1.5}, "colour": "red"},
            {"name": "a", "url": "alsa:hw:0"},
        ]
    }
    with pytest.raises(InvalidConfiguration) as caught:
        parse_sources(document, "sources.yaml")
    message = caught.value.message
    expected = ("sources.0.name", "sources.0.url", "unknown source 'ftp://x/y'", "sources.1.colour")
    for part in (*expected, "sources.1.thresholds.scream: Input should be less than or equal to 1"):
        assert part in message, message
    with pytest.raises(InvalidConfiguration, match="repeated: a"):
        parse_sources({"sources": [{"name": "a", "url": "pulse:x"}, {"name": "a", "url": "alsa:hw:0"}]})
    with pytest.raises(InvalidConfiguration, match="standard input"):
        parse_sources({"sources": [{"name": "a", "url": "stdin:"}, {"name": "b", "url": "stdin:"}]})
    with pytest.raises(InvalidConfiguration, match="cannot read the sources file"):
        load_sources(Path("/nonexistent/sources.yaml"))


def test_passwords_never_appear_in_what_is_shown() -> None:
    assert redacted("rtsp://viewer:s3cret@10.0.0.7:554/s") == "rtsp://viewer:***@10.0.0.7:554/s"
    assert redacted("rtsp://viewer:${PW}@cam/s") == "rtsp://viewer:***@cam/s"
    assert redacted("http://radio.local/live") == "http://radio.local/live"


def test_the_ffmpeg_command_of_each_kind() -> None:
    def command(url: str, **values: object) -> list[str]:
        return ffmpeg_command(SourceSpec(name="s", url=url, **values), url=url)

    # float WAV at the source's own rate and channels: mixed and resampled as the file path does
    wav = ["-vn", "-c:a", "pcm_f32le", "-f", "wav", "-fflags", "+bitexact", "-map_metadata", "-1", "pipe:1"]
    rtsp = command("rtsp://cam/s")
    assert rtsp[rtsp.index("-rtsp_transport") + 1] == "tcp" and "-timeout" in rtsp and rtsp[-10:] == wav
    assert "-ar" not in rtsp and "-ac" not in rtsp
    assert "-rw_timeout" in command("http://radio/live")
    # a file is read as fast as the capture takes it (the supervisor paces one played at real
    # time) and named with file: so that a ':' in its name is no protocol
    assert command("file:/a.wav")[-12:-10] == ["-i", "file:/a.wav"]
    assert command("file:///a:b.wav", realtime=False)[-12:-10] == ["-i", "file:/a:b.wav"]
    assert not any("-re" in command(url) for url in ("/a.wav", "http://radio/live", "rtsp://cam/s"))
    # every line of ffmpeg's with its level (its errors told from its input's description)
    assert rtsp[rtsp.index("-loglevel") + 1] == "level+info" and "-nostats" in rtsp
    assert command("alsa:hw:1,0")[-14:-10] == ["-f", "alsa", "-i", "hw:1,0"]
    assert command("stdin:")[-12:-10] == ["-i", "pipe:0"]


def test_a_sources_privacy_is_validated_as_a_request_is() -> None:
    with pytest.raises(InvalidConfiguration, match=r"sources.0: .*unknown privacy method 'whisper'"):
        parse_sources({"sources": [{"name": "a", "url": "pulse:x", "privacy": "whisper"}]})
    bad = {"name": "a", "url": "pulse:x", "privacy": "scramble", "privacy_params": {"segment_seconds": 0.01}}
    with pytest.raises(InvalidConfiguration, match="'segment_seconds' of method 'scramble' must be"):
        parse_sources({"sources": [bad]})
    with pytest.raises(InvalidConfiguration, match="privacy_window_seconds"):
        parse_sources({"sources": [{"name": "a", "url": "pulse:x", "privacy_window_seconds": 0.1}]})
    (source,) = parse_sources({"sources": [{"name": "a", "url": "pulse:x", "privacy": "scrample"}]})
    assert source.privacy_request().method == "scramble"  # the old service's alias
    assert source.privacy_request().params["segment_seconds"] == 1.0


@pytest.mark.parametrize(
    ("minimum", "enforcement", "named", "applied"),
    [
        ("none", "upgrade", None, "none"),
        ("scramble", "upgrade", None, "scramble"),  # naming none gets the minimum
        ("scramble", "upgrade", "dp_noise", "scramble"),  # a weaker one is upgraded
        ("scramble", "reject", None, "scramble"),
        ("scramble", "upgrade", "speech_mask", "speech_mask"),
    ],
)
def test_the_operators_minimum_applies_to_every_source(
    minimum: str, enforcement: str, named: str | None, applied: str
) -> None:
    settings = TransformerSettings(
        privacy_minimum=minimum, privacy_enforcement=enforcement, scramble_segment_seconds=2.0
    )
    (source,) = parse_sources({"sources": [{"name": "cam", "url": "pulse:x", "privacy": named}]})
    request = source_privacy([source], privacy_policy(settings))["cam"]
    assert request.method == applied
    if applied == "scramble":
        assert request.params["segment_seconds"] == 2.0  # the operator's default for the method


def test_a_weaker_source_is_refused_before_anything_starts_when_the_minimum_rejects() -> None:
    settings = TransformerSettings(privacy_minimum="speech_mask", privacy_enforcement="reject")
    sources = parse_sources({"sources": [{"name": "cam", "url": "pulse:x", "privacy": "scramble"}]})
    with pytest.raises(InvalidConfiguration, match="source cam: privacy method 'scramble' is below"):
        source_privacy(sources, privacy_policy(settings))


def test_a_source_can_watch_some_groups_with_its_own_thresholds() -> None:
    groups = load_anomaly_groups()
    spec = SourceSpec(
        name="a",
        url="pulse:x",
        groups=["glass_break", "smoke_fire_alarm"],
        thresholds={"smoke_fire_alarm": 0.2},
    )
    watched = {group.name: group for group in source_groups(groups, spec)}
    assert (
        set(watched) == {"glass_break", "smoke_fire_alarm"} and watched["smoke_fire_alarm"].threshold == 0.2
    )
    default = {group.name: group for group in groups}["glass_break"].threshold
    assert watched["glass_break"].threshold == default
    assert len(source_groups(groups, SourceSpec(name="b", url="pulse:x"))) == len(groups)
    with pytest.raises(InvalidConfiguration, match=r"source c: groups: unknown anomaly group\(s\) gunshots"):
        source_groups(groups, SourceSpec(name="c", url="pulse:x", groups=["gunshots"]))
    with pytest.raises(InvalidConfiguration, match=r"source c: thresholds: unknown anomaly group\(s\) fir "):
        source_groups(groups, SourceSpec(name="c", url="pulse:x", thresholds={"fir": 0.3}))
    with pytest.raises(InvalidConfiguration, match="hop"):
        parse_sources({"sources": [{"name": "d", "url": "pulse:x", "hop": 11}]})


def test_the_default_queue_holds_each_sources_privacy_window_and_five_seconds() -> None:
    from transformer.monitor.service import MonitorService, default_queue_chunks

    plain = SourceSpec(name="a", url="pulse:x")  # the 4-s window of the minimum's method too
    private = SourceSpec(name="b", url="pulse:y", privacy="speech_mask", privacy_window_seconds=10)
    assert default_queue_chunks([plain]) == 90  # (5 + 4) s of 0.1-s chunks
    assert default_queue_chunks([plain, private]) == 90 + 150
    assert MonitorService([plain], None, queue_chunks=None).queue_chunks == 90  # type: ignore[arg-type]
    assert MonitorService([plain], None, queue_chunks=25).queue_chunks == 25  # type: ignore[arg-type]
