"""The sources file and the ffmpeg command of each kind of source."""

from __future__ import annotations

from pathlib import Path

import pytest

from contract.errors import InvalidConfiguration
from transformer.monitor.ffmpeg import ffmpeg_command
from transformer.monitor.sources import SourceSpec, load_sources, parse_sources, redacted, source_kind


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
    for part in (*expected, "thresholds must be in (0, 1]"):
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
        return ffmpeg_command(SourceSpec(name="s", url=url, **values), sample_rate=16000, url=url)

    pcm = ["-vn", "-ac", "1", "-ar", "16000", "-f", "s16le", "-acodec", "pcm_s16le", "pipe:1"]
    rtsp = command("rtsp://cam/s")
    assert rtsp[rtsp.index("-rtsp_transport") + 1] == "tcp" and "-timeout" in rtsp and rtsp[-10:] == pcm
    assert "-rw_timeout" in command("http://radio/live")
    assert command("file:/a.wav")[-13:-10] == ["-re", "-i", "/a.wav"]
    assert "-re" not in command("/a.wav", realtime=False)
    assert command("alsa:hw:1,0")[-14:-10] == ["-f", "alsa", "-i", "hw:1,0"]
    assert command("stdin:")[-12:-10] == ["-i", "pipe:0"]
