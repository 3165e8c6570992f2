"""The chart's operators' monitoring: the Grafana dashboard ConfigMap and the PrometheusRule,
off by default, strictly valid when enabled; the alerts checked and unit-tested by promtool.

One definition of the alerts: helm/audioguard/files/prometheus-rules.yaml, rendered by helm for
the PrometheusRule and, here, for promtool (the unit tests in tests/deploy/alerts/ run against the
chart's default thresholds).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.conftest import KUBERNETES_SCHEMAS
from tests.deploy.kubeconform import Kubeconform
from tests.deploy.schemas import object_meta_schema
from tests.deploy.tools import (
    CHART,
    SCHEMAS,
    by_kind_and_name,
    documents,
    helm_template,
    helm_template_error,
    run,
)
from tests.deploy.variants import kustomize_site
from tests.support.prometheus import metric_names, prometheus_tool, rendered_rules

ALERTS_TESTS = Path(__file__).resolve().parent / "alerts" / "alerts-test.yaml"
ENABLED = ["monitoring.dashboard.enabled=true", "monitoring.rules.enabled=true"]
ALERTS = {
    "AudioguardSourceDown",
    "AudioguardSourceSilent",
    "AudioguardOutboxBacklogGrowing",
    "AudioguardOutboxStale",
    "AudioguardDeadLetters",
    "AudioguardPredictorErrors",
    "AudioguardAdmissionRejections",
}


def _alerts(rules: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule}


def test_both_are_off_by_default() -> None:
    kinds = {doc["kind"] for doc in documents(helm_template())}
    assert "PrometheusRule" not in kinds
    assert not any(
        doc["metadata"]["name"].endswith("-dashboard")
        for doc in documents(helm_template())
        if doc["kind"] == "ConfigMap"
    )


def test_enabled_they_render_strictly_valid_objects_with_the_sidecar_label(kubeconform: Kubeconform) -> None:
    docs = documents(helm_template(set_values=[*ENABLED, "monitoring.rules.labels.release=kps"]))
    objects = by_kind_and_name(docs)
    dashboard = objects["ConfigMap", "audioguard-dashboard"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    board = json.loads(dashboard["data"]["audioguard.json"])
    assert board["uid"] == "audioguard-operations" and board["panels"]
    kubeconform.assert_valid(yaml.safe_dump_all([d for d in docs if d["kind"] != "PrometheusRule"]))

    rule = objects["PrometheusRule", "audioguard"]
    assert rule["metadata"]["labels"]["release"] == "kps"  # what the Prometheus' ruleSelector matches
    schema = json.loads((SCHEMAS / "prometheusrule-monitoring-v1.json").read_text("utf-8"))
    if (KUBERNETES_SCHEMAS / "_definitions.json").is_file():
        schema["properties"]["metadata"] = object_meta_schema(KUBERNETES_SCHEMAS)
    jsonschema.validate(rule, schema)
    assert set(_alerts(rule["spec"])) == ALERTS
    broken = json.loads(json.dumps(rule))
    broken["spec"]["groups"][0]["rules"][0]["for_"] = "5m"  # the validator is no rubber stamp
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_thresholds_and_alert_labels_come_from_the_values() -> None:
    alerts = _alerts(
        rendered_rules(
            [
                "monitoring.rules.sourceDownFor=2m",
                "monitoring.rules.oldestPendingSeconds=120",
                "monitoring.rules.alertLabels.team=home",
            ]
        )
    )
    assert alerts["AudioguardSourceDown"]["for"] == "2m"
    assert alerts["AudioguardOutboxStale"]["expr"] == "audioguard_sink_oldest_pending_seconds > 120"
    assert {alert["labels"]["team"] for alert in alerts.values()} == {"home"}
    assert all(set(alert["annotations"]) == {"summary", "description"} for alert in alerts.values())


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("monitoring.rules.sourceDownFor=5 minutes", "sourceDownFor"),
        ("monitoring.rules.sourceSilentSeconds=-1", "sourceSilentSeconds"),
    ],
)
def test_bad_thresholds_are_refused_naming_the_value(value: str, named: str) -> None:
    assert named in helm_template_error(set_values=[value])


def test_promtool_checks_the_rules(tmp_path: Path) -> None:
    promtool = prometheus_tool("promtool")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rendered_rules()), "utf-8")
    assert f"SUCCESS: {len(ALERTS)} rules found" in run([promtool, "check", "rules", tmp_path / "rules.yaml"])


def test_every_alert_has_a_promtool_unit_test_that_fires_and_one_that_does_not(tmp_path: Path) -> None:
    promtool = prometheus_tool("promtool")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rendered_rules()), "utf-8")
    shutil.copy(ALERTS_TESTS, tmp_path / ALERTS_TESTS.name)
    cases = yaml.safe_load(ALERTS_TESTS.read_text("utf-8"))["tests"]
    checks = [check for case in cases for check in case["alert_rule_test"]]
    assert {c["alertname"] for c in checks if c["exp_alerts"]} == ALERTS
    assert {c["alertname"] for c in checks if not c["exp_alerts"]} == ALERTS
    assert "SUCCESS" in run([promtool, "test", "rules", tmp_path / ALERTS_TESTS.name])


def test_a_failing_expectation_fails_promtool(tmp_path: Path) -> None:
    """The unit tests can fail: another threshold than the one they assume breaks them."""
    promtool = prometheus_tool("promtool")
    rules = rendered_rules(["monitoring.rules.oldestPendingSeconds=1200"])
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules), "utf-8")
    shutil.copy(ALERTS_TESTS, tmp_path / ALERTS_TESTS.name)
    result = subprocess.run(
        [promtool, "test", "rules", str(tmp_path / ALERTS_TESTS.name)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "FAILED" in output and "AudioguardOutboxStale" in output


DASHBOARD = CHART / "files" / "grafana-dashboard.json"
#: What the issue asks the dashboard to show (a panel title each).
PANELS = {
    "Sources up",
    "Seconds since audio",
    "Level",
    "Events per hour by group",
    "Outbox backlog",
    "Oldest pending",
    "Dead letters and drops",
    "Admission rejections",
    "Request latency (p50, p95)",
    "Onset-to-delivery latency (p50, p95)",
}


def test_the_dashboard_has_the_panels_each_explained_with_a_unit_and_none_overlapping() -> None:
    board = json.loads(DASHBOARD.read_text("utf-8"))
    panels = [panel for panel in board["panels"] if panel["type"] != "row"]
    assert {panel["title"] for panel in panels} >= PANELS
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        grid = panel["gridPos"]
        area = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert grid["x"] + grid["w"] <= 24 and not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area
    for panel in panels:
        assert panel["description"] and panel["fieldConfig"]["defaults"]["unit"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}"
        refs = [target["refId"] for target in panel["targets"]]
        assert refs and len(set(refs)) == len(refs) and all(t["expr"] for t in panel["targets"])
    assert len({panel["id"] for panel in board["panels"]}) == len(board["panels"])


@pytest.mark.parametrize(
    ("expression", "names"),
    [
        (
            'sum by (group) (increase(audioguard_anomalies_total{path="live"}[1h]))',
            {"audioguard_anomalies_total"},
        ),
        (
            "histogram_quantile(0.95, sum by (job, le) "
            "(rate(request_predict_seconds_bucket[$__rate_interval]))) > 2",
            {"request_predict_seconds_bucket"},
        ),
        ("a_metric > 0 and deriv(b_metric[15m]) > 0", {"a_metric", "b_metric"}),
        ("sum without (reason) (rate(c_total[5m])) * 60 > 1e3", {"c_total"}),
        ('x{source=~"$source", le="+Inf"} offset 5m unless on (pod) group_left y', {"x", "y"}),
    ],
)
def test_the_metric_name_parser_finds_exactly_the_metrics(expression: str, names: set[str]) -> None:
    assert metric_names(expression) == names


def test_the_kustomize_component_is_the_charts_rendering(tmp_path: Path, kubeconform: Kubeconform) -> None:
    """manifests/components/monitoring is generated from the chart (scripts/render-monitoring.sh):
    the same alerts at the default thresholds and the same dashboard, or this fails."""
    component = documents(kustomize_site(tmp_path, "knative", ("monitoring",)))
    chart = by_kind_and_name(documents(helm_template(set_values=ENABLED)))
    mine = by_kind_and_name(d for d in component if d["kind"] in ("PrometheusRule", "ConfigMap"))
    hint = "manifests/components/monitoring differs from the chart: run bash scripts/render-monitoring.sh"
    assert mine["PrometheusRule", "audioguard"]["spec"] == chart["PrometheusRule", "audioguard"]["spec"], hint
    dashboard = mine["ConfigMap", "audioguard-dashboard"]
    assert dashboard["data"] == chart["ConfigMap", "audioguard-dashboard"]["data"], hint
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    kubeconform.assert_valid(yaml.safe_dump_all([d for d in component if d["kind"] != "PrometheusRule"]))
