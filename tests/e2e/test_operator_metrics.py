"""The operators' dashboard and alerts against the real services: every metric they name is on
the running transformer's or predictor's /metrics, and a real Prometheus (Debian's) scraping them
on loopback with the chart's alerts loaded fires AudioguardSourceDown for a live source whose
stream dies.

The transformer listens to a live source served by ffmpeg over HTTP on loopback and delivers its
events to the real DHT broker. The alerts are the chart's (files/prometheus-rules.yaml rendered by
helm) with a 3 s ``for:`` set through the values, so the test need not wait five minutes.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.deploy.tools import CHART
from tests.e2e.test_anomaly_delivery import poll, transformer_args
from tests.support.dht_broker import DhtBroker
from tests.support.prometheus import (
    PrometheusServer,
    exported_names,
    metric_names,
    prometheus_server,
    prometheus_tool,
    rendered_rules,
)
from tests.support.serverutil import RunningServer, free_port, start_server
from tests.transformer.monitor.test_supervisor import http_wav_server, wav

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ffmpeg_installed")]

DASHBOARD = CHART / "files" / "grafana-dashboard.json"


@dataclass
class Rig:
    predictor: RunningServer
    transformer: RunningServer
    stream: subprocess.Popen[bytes]  # the ffmpeg serving the live source
    prometheus: PrometheusServer


def dashboard_expressions() -> list[str]:
    board = json.loads(DASHBOARD.read_text("utf-8"))
    expressions = [target["expr"] for panel in board["panels"] for target in panel.get("targets", [])]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            expressions.append(variable["definition"].removeprefix("label_values(").split(",")[0])
    return expressions


def alert_expressions() -> list[str]:
    return [rule["expr"] for group in rendered_rules()["groups"] for rule in group["rules"]]


@pytest.fixture(scope="module")
def rig(
    predictor: RunningServer, synthetic_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Rig]:
    prometheus_tool("prometheus")
    work = tmp_path_factory.mktemp("operators")
    wav(work / "room.wav", 4.0)
    port = free_port()
    (work / "sources.yaml").write_text(f"sources:\n  - {{name: mic, url: 'http://127.0.0.1:{port}/live'}}\n")
    with contextlib.ExitStack() as stack:
        stream_process = stack.enter_context(http_wav_server(work / "room.wav", port))
        broker = DhtBroker(work / "dht").start()
        stack.callback(broker.stop)
        transformer = start_server(
            "transformer",
            [
                *transformer_args(synthetic_model_dir, predictor),
                "--sources_file", str(work / "sources.yaml"),
                "--dht_url", broker.url,
                "--outbox_path", str(work / "state" / "outbox.sqlite3"),
            ],
        )  # fmt: skip
        stack.callback(transformer.stop)
        rules = rendered_rules(["monitoring.rules.sourceDownFor=3s"])
        targets = [(name, server.http_url.removeprefix("http://")) for name, server in
                   (("predictor", predictor), ("transformer", transformer))]  # fmt: skip
        prometheus = stack.enter_context(prometheus_server(work / "prometheus", free_port(), targets, rules))
        yield Rig(predictor, transformer, stream_process, prometheus)


def test_every_metric_the_dashboard_and_the_alerts_name_is_exported_by_the_running_services(rig: Rig) -> None:
    exported: set[str] = set()
    for server in (rig.predictor, rig.transformer):
        exported |= exported_names(requests.get(server.http_url + "/metrics", timeout=10).text)
    on_dashboard = set().union(*map(metric_names, dashboard_expressions()))
    in_alerts = set().union(*map(metric_names, alert_expressions()))
    assert len(on_dashboard) >= 15 and len(in_alerts) == 7  # the parser found them all
    assert on_dashboard - exported == set(), "the dashboard reads metrics no service exports"
    assert in_alerts - exported == set(), "the alerts read metrics no service exports"
    # the predictor-failure counter is at 0 before any failure, so rate() sees the first one
    transformer = requests.get(rig.transformer.http_url + "/metrics", timeout=10).text
    assert 'audioguard_predictor_call_failures_total{reason="unavailable"} 0.0' in transformer


def test_prometheus_scrapes_both_and_fires_source_down_when_the_stream_dies(rig: Rig) -> None:
    prometheus = rig.prometheus

    def value(expression: str) -> float | None:
        result = prometheus.query(expression)
        return float(result[0]["value"][1]) if result else None

    poll(lambda: value('sum(up{job=~"predictor|transformer"})') == 2, "both services scraped")
    poll(lambda: value('audioguard_monitor_source_up{source="mic"}') == 1, "the live source up in Prometheus")
    # its audio raised an event, delivered to the DHT: the onset-to-delivery histogram has it
    poll(lambda: (value('audioguard_event_delivery_seconds_count{sink="dht"}') or 0) > 0, "a delivered event")
    assert not [a for a in prometheus.alerts() if a["labels"]["alertname"] == "AudioguardSourceDown"]

    rig.stream.kill()  # the camera goes away
    firing = poll(
        lambda: [
            a for a in prometheus.alerts()
            if a["labels"]["alertname"] == "AudioguardSourceDown" and a["state"] == "firing"
        ],
        "AudioguardSourceDown firing",
        timeout=60,
    )  # fmt: skip
    (alert,) = firing
    assert alert["labels"]["source"] == "mic" and alert["labels"]["job"] == "transformer"
    assert alert["annotations"]["summary"] == "Live source mic has delivered no audio for 3s"
