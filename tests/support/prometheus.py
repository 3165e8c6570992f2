"""Debian's Prometheus tools for the operators' tests: promtool, and a real Prometheus server on
loopback scraping the services with the chart's alerts loaded."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.deploy.tools import helm_template

PROMQL_KEYWORDS = frozenset(
    [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "and",
        "or",
        "unless",
        "offset",
        "bool",
        "inf",
        "nan",
    ]
)


def prometheus_tool(name: str) -> str:
    """``promtool`` or ``prometheus`` (Debian package prometheus); skips without it, and fails
    instead when AUDIOGUARD_REQUIRE_DEPLOY_TOOLS is set (CI: a check that did not run is no pass)."""
    binary = shutil.which(name) or (f"/usr/bin/{name}" if os.path.exists(f"/usr/bin/{name}") else None)
    if binary is None:
        message = (
            f"{name} is not installed: bash scripts/install-system-tools.sh (apt-get install prometheus)"
        )
        if os.environ.get("AUDIOGUARD_REQUIRE_DEPLOY_TOOLS"):
            pytest.fail(message)
        pytest.skip(message)
    return binary


def rendered_rules(set_values: Sequence[str] = ()) -> dict[str, Any]:
    """The chart's alerts as a Prometheus rules file ({"groups": ...}): the PrometheusRule's spec,
    rendered by helm from files/prometheus-rules.yaml with ``set_values``."""
    rendered = helm_template(
        set_values=["monitoring.rules.enabled=true", *set_values],
    )
    (rule,) = [doc for doc in yaml.safe_load_all(rendered) if doc and doc["kind"] == "PrometheusRule"]
    return dict(rule["spec"])


def metric_names(expression: str) -> set[str]:
    """The metric names a PromQL (or Grafana) expression reads: identifiers that are not
    functions, keywords, label names (inside {...} or by/without/on/ignoring (...)), durations,
    strings or Grafana variables."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expression)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges, subqueries
    text = re.sub(r"\$\{?\w+\}?", "", text)  # Grafana variables ($__rate_interval, ${source})
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        name, rest = match.group(), text[match.end() :].lstrip()
        if name in PROMQL_KEYWORDS or rest.startswith("("):
            continue
        if match.start() > 0 and (text[match.start() - 1].isdigit() or text[match.start() - 1] == "."):
            continue  # a number's exponent or unit (1e3, 5m)
        names.add(name)
    return names


def exported_names(exposition: str) -> set[str]:
    """Every series name a /metrics text exposes or declares: its samples, and for each declared
    family (# TYPE, even without samples yet) the names its type gives (histograms' _bucket...)."""
    names: set[str] = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            suffixes = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("", "_sum", "_count")}
            names.update(name + suffix for suffix in suffixes.get(kind, ("",)))
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


@dataclass
class PrometheusServer:
    url: str
    process: subprocess.Popen[bytes]
    logs: Path

    def query(self, expression: str) -> list[dict[str, Any]]:
        answer = requests.get(f"{self.url}/api/v1/query", params={"query": expression}, timeout=10)
        answer.raise_for_status()
        return list(answer.json()["data"]["result"])

    def alerts(self) -> list[dict[str, Any]]:
        answer = requests.get(f"{self.url}/api/v1/alerts", timeout=10)
        answer.raise_for_status()
        return list(answer.json()["data"]["alerts"])

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextlib.contextmanager
def prometheus_server(
    work: Path, port: int, targets: Iterable[tuple[str, str]], rules: dict[str, Any], *, interval: str = "1s"
) -> Iterator[PrometheusServer]:
    """A Prometheus on 127.0.0.1:port scraping ``targets`` (job, host:port) every ``interval``
    and evaluating ``rules`` as often; stopped on exit."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "rules.yaml").write_text(yaml.safe_dump(rules), "utf-8")
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(work / "rules.yaml")],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [target]}]} for job, target in targets
        ],
    }
    (work / "prometheus.yml").write_text(yaml.safe_dump(config), "utf-8")
    log_fd, log_name = tempfile.mkstemp(prefix="prometheus-", suffix=".log")
    with os.fdopen(log_fd, "wb") as log_file:
        process = subprocess.Popen(
            [prometheus_tool("prometheus"), f"--config.file={work / 'prometheus.yml'}",
             f"--storage.tsdb.path={work / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    server = PrometheusServer(f"http://127.0.0.1:{port}", process, Path(log_name))
    try:
        deadline = time.monotonic() + 30
        while True:  # polling its readiness endpoint (no fixed sleep)
            try:
                if requests.get(f"{server.url}/-/ready", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"prometheus did not start:\n{server.logs.read_text()[-3000:]}")
            time.sleep(0.2)
        yield server
    finally:
        server.stop()
