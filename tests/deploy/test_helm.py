"""The Helm chart: lint, strict schema validation of every documented variant, values checking."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.kubeconform import Kubeconform
from tests.deploy.policy import check_deployment_policy
from tests.deploy.tools import (
    CHART,
    REPO,
    by_kind_and_name,
    documents,
    helm_command,
    helm_template,
    helm_template_error,
    run,
)
from tests.deploy.variants import CHART_VARIANTS, CHART_VARIANTS_DIR, render_variant, variant_files
from tests.deploy.workloads import flag_values


def test_every_variant_file_is_listed() -> None:
    on_disk = {path.name.removesuffix("-values.yaml") for path in CHART_VARIANTS_DIR.glob("*-values.yaml")}
    assert on_disk == set(CHART_VARIANTS) - {"default"}


def test_variants_are_documented() -> None:
    guide = (REPO / "docs" / "deploy.md").read_text("utf-8")
    for name in set(CHART_VARIANTS) - {"default"}:
        assert f"ci/{name}-values.yaml" in guide, f"docs/deploy.md does not mention the {name} variant"


@pytest.mark.parametrize("name", sorted(CHART_VARIANTS))
def test_helm_lint_strict(name: str) -> None:
    run([*helm_command("lint --strict", values_files=variant_files(name))])


@pytest.mark.parametrize("name", sorted(CHART_VARIANTS))
def test_variant_renders_strictly_valid_objects(name: str, kubeconform: Kubeconform) -> None:
    rendered = helm_template(values_files=variant_files(name))
    kubeconform.assert_valid(rendered, expected_kinds=CHART_VARIANTS[name])


@pytest.mark.parametrize("name", sorted(CHART_VARIANTS))
def test_variant_follows_the_deployment_policy(name: str) -> None:
    check_deployment_policy(render_variant(name))


def test_strict_validation_catches_what_helm_lets_through(kubeconform: Kubeconform) -> None:
    """The validator is not a rubber stamp: an unknown field and the docs' scaleMetric: qps fail."""
    docs = render_variant("default")
    isvc = next(doc for doc in docs if doc["kind"] == "InferenceService")
    isvc["spec"]["transformer"]["scaleMetric"] = "qps"
    isvc["spec"]["predictor"]["containers"][0]["resource"] = {"limits": {"cpu": "1"}}
    verdicts = kubeconform.validate(yaml.safe_dump_all(docs))
    (bad,) = [v for v in verdicts if v.status != "statusValid"]
    assert bad.kind == "InferenceService"
    assert "scaleMetric" in bad.message and "resource" in bad.message


@pytest.mark.parametrize(
    ("api_versions", "mode", "metric"),
    [((), "Standard", "cpu"), (("serving.knative.dev/v1",), "Knative", "concurrency")],
)
def test_default_mode_is_what_the_cluster_can_run(
    api_versions: tuple[str, ...], mode: str, metric: str
) -> None:
    """deploymentMode Auto: Knative where the cluster serves Knative Serving's API, else Standard
    (KServe leaves a Knative InferenceService on a cluster without Knative at READY Unknown)."""
    command = [*helm_command("template"), *(f"--api-versions={v}" for v in api_versions)]
    isvc = by_kind_and_name(documents(run(command)))["InferenceService", "audioguard"]
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == mode
    assert {isvc["spec"]["transformer"]["scaleMetric"], isvc["spec"]["predictor"]["scaleMetric"]} == {metric}
    assert ("serving.kserve.io/autoscalerClass" in isvc["metadata"]["annotations"]) == (mode == "Standard")


def test_standard_variant_uses_hpa_on_cpu() -> None:
    isvc = by_kind_and_name(render_variant("standard"))["InferenceService", "audioguard"]
    assert isvc["metadata"]["annotations"]["serving.kserve.io/autoscalerClass"] == "hpa"
    for component in ("transformer", "predictor"):
        assert isvc["spec"][component]["scaleMetric"] == "cpu"
        assert isvc["spec"][component]["scaleTarget"] == 70


def test_edge_transformer_calls_the_remote_predictor_over_tls() -> None:
    values = yaml.safe_load((CHART_VARIANTS_DIR / "edge-transformer-values.yaml").read_text("utf-8"))
    docs = by_kind_and_name(render_variant("edge-transformer"))
    deployment = docs["Deployment", "audioguard-transformer"]
    flags = flag_values(deployment["spec"]["template"]["spec"]["containers"][0]["args"])
    assert flags["--predictor_host"] == values["edge"]["predictorHost"]
    assert flags["--predictor_use_ssl"] == "true"
    service = docs["Service", "audioguard-transformer"]
    assert service["spec"]["ports"][0]["port"] == 5000 and service["spec"]["type"] == "NodePort"
    assert docs["Secret", "audioguard-dht"]["stringData"]["AUDIOGUARD_DHT_URL"] == values["dht"]["url"]


def test_edge_listening_mounts_a_sources_file_the_service_accepts_and_keeps_passwords_out() -> None:
    from transformer.monitor.sources import parse_sources

    values = yaml.safe_load((CHART_VARIANTS_DIR / "edge-listening-values.yaml").read_text("utf-8"))
    docs = by_kind_and_name(render_variant("edge-listening"))
    deployment = docs["Deployment", "audioguard-transformer"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    flags = flag_values(container["args"])
    sources_file = Path(flags["--sources_file"])
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "sources"]
    assert sources_file.parent == Path(mount["mountPath"]) and mount["readOnly"] is True
    (volume,) = [v for v in pod["volumes"] if v["name"] == "sources"]
    config = docs["ConfigMap", volume["configMap"]["name"]]
    # the file the pod reads is one the service's own validation accepts, source for source
    sources = parse_sources(yaml.safe_load(config["data"][sources_file.name]), "the chart's sources")
    assert [s.name for s in sources] == [s["name"] for s in values["edge"]["listen"]["sources"]]
    assert sources[0].thresholds == {"glass_break": 0.4} and sources[1].no_data_seconds == 20
    # credentials: ${VAR}s in the ConfigMap, their values from the named Secret, never rendered
    assert "${KITCHEN_PASSWORD}" in config["data"][sources_file.name]
    credentials = {
        item["name"]: item["valueFrom"]["secretKeyRef"] for item in container["env"] if "valueFrom" in item
    }
    assert credentials == {  # exactly the urls' variables, each from its key: nothing else of the Secret
        name: {"name": "audioguard-camera-credentials", "key": name}
        for name in ("GO2RTC_PASSWORD", "KITCHEN_PASSWORD")
    }
    assert {"name": "PULSE_SERVER", "value": "tcp:10.0.0.2:4713"} in container["env"]
    assert flags["--monitor_hop"] == "1"
    assert "audioguard/sources-checksum" in deployment["spec"]["template"]["metadata"]["annotations"]


def test_listening_needs_the_edge_topology_and_valid_sources() -> None:
    source = {"name": "cam", "url": "rtsp://cam/stream"}
    message = helm_template_error({"edge": {"listen": {"sources": [source]}}})
    assert "set topology=transformer-only" in message
    whispered = {**source, "privacy": "whisper"}
    edge = {"predictorHost": "p:443", "listen": {"sources": [whispered]}}
    message = helm_template_error({"topology": "transformer-only", "edge": edge})
    assert "values don't meet the specifications of the schema" in message
    message = helm_template_error({"edge": {"listen": {"sources": [{"name": "bad name", "url": "x"}]}}})
    assert "values don't meet the specifications of the schema" in message
    edge = {"topology": "transformer-only", "edge": {"predictorHost": "p:443"}}
    secret_url = {"name": "cam", "url": "rtsp://u:${CAM_PASSWORD}@cam/stream"}
    message = helm_template_error({**edge, "edge": {**edge["edge"], "listen": {"sources": [secret_url]}}})
    assert "name CAM_PASSWORD: set edge.listen.credentialsSecret" in message
    sneaky = {"name": "cam", "url": "rtsp://cam/${AUDIOGUARD_PRIVACY_MINIMUM}"}
    listen = {"sources": [sneaky], "credentialsSecret": "creds"}
    message = helm_template_error({**edge, "edge": {**edge["edge"], "listen": listen}})
    assert "AUDIOGUARD_PRIVACY_MINIMUM is a setting of the service" in message


def test_predictor_only_renders_no_transformer() -> None:
    docs = render_variant("predictor-only")
    isvc = by_kind_and_name(docs)["InferenceService", "audioguard"]
    assert "transformer" not in isvc["spec"]
    assert not any("AUDIOGUARD_PRIVACY_MINIMUM" in doc.get("data", {}) for doc in docs)


def test_site_values_reach_the_transformer_settings() -> None:
    found = check_deployment_policy(render_variant("site"))
    env = found["transformer"].env
    assert env["AUDIOGUARD_PRIVACY_MINIMUM"] == "speech_mask"
    assert env["AUDIOGUARD_PRIVACY_ENFORCEMENT"] == "reject"
    assert float(env["AUDIOGUARD_LOUDNESS_GATE_DBFS"]) == -60
    assert env["AUDIOGUARD_WINDOW_HOP"] == "5"
    assert env["AUDIOGUARD_DHT_URL"] == "http://sifis-dht.sifis-home.svc.cluster.local:3000"
    # MQTT beside the DHT: URL and credentials from a Secret, the CA mounted where the setting says
    assert env["AUDIOGUARD_MQTT_URL"] == "mqtts://mosquitto.home.svc.cluster.local:8883"
    assert (env["AUDIOGUARD_MQTT_USERNAME"], env["AUDIOGUARD_MQTT_PASSWORD"]) == ("audioguard", "change-me")
    assert env["AUDIOGUARD_MQTT_TOPIC_PREFIX"] == "audioguard"
    assert env["AUDIOGUARD_MQTT_CA_FILE"] == "/etc/audioguard-mqtt-ca/ca.crt"
    objects = by_kind_and_name(render_variant("site"))
    secret = next(obj for (kind, name), obj in objects.items() if kind == "Secret" and name.endswith("-mqtt"))
    assert "AUDIOGUARD_MQTT_PASSWORD" in secret["stringData"]
    configmap = next(
        obj for (kind, name), obj in objects.items() if kind == "ConfigMap" and name.endswith("-transformer")
    )
    assert not any("PASSWORD" in key or "MQTT_URL" in key for key in configmap["data"])


def test_the_web_pages_credentials_come_from_an_existing_secret_only() -> None:
    docs = documents(helm_template({"ui": {"existingSecret": "audioguard-ui", "retentionHours": 6}}))
    isvc = by_kind_and_name(docs)["InferenceService", "audioguard"]
    env_from = isvc["spec"]["transformer"]["containers"][0]["envFrom"]
    assert {"secretRef": {"name": "audioguard-ui"}} in env_from
    configmap = next(
        doc for doc in docs if doc["kind"] == "ConfigMap" and doc["metadata"]["name"].endswith("-transformer")
    )
    assert configmap["data"]["AUDIOGUARD_UI_RETENTION_HOURS"] == "6"
    assert not any("UI_TOKEN" in key or "UI_PASSWORD" in key for key in configmap["data"])
    default = documents(helm_template())
    default_isvc = by_kind_and_name(default)["InferenceService", "audioguard"]
    assert "audioguard-ui" not in json.dumps(default_isvc)


def test_payload_logger_logs_responses_only() -> None:
    isvc = by_kind_and_name(render_variant("payload-logger"))["InferenceService", "audioguard"]
    assert isvc["spec"]["transformer"]["logger"]["mode"] == "response"
    assert (
        "logger"
        not in by_kind_and_name(render_variant("default"))["InferenceService", "audioguard"]["spec"][
            "transformer"
        ]
    )


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"transformer": {"minReplicas": 0}}, "minReplicas"),
        ({"predictor": {"minReplicas": 0}}, "minReplicas"),
        ({"deploymentMode": "Serverless"}, "deploymentMode"),
        ({"settings": {"privacyMinimum": "whisper"}}, "privacyMinimum"),
        ({"transformer": {"logger": {"enabled": True, "mode": "all"}}}, "mode"),
        ({"topology": "transformer-only"}, "predictorHost"),
        ({"images": {"transformer": {"tag": ""}}}, "tag"),
        ({"transformer": {"resources": {"limits": {"memory": "three gigs"}}}}, "memory"),
        ({"transformer": {"extraEnv": {"PRIVACY_MINIMUM": "none"}}}, "PRIVACY_MINIMUM"),
        ({"replicas": 3}, "replicas"),
        ({"ui": {"retentionHours": 48}}, "retentionHours"),
        ({"models": {"storageUri": "ftp://weights/"}}, "storageUri"),
        (
            {"settings": {"anomalyGroups": {"groups": [{"name": "glass_break", "threshold": 1.5}]}}},
            "threshold",
        ),
        ({"settings": {"anomalyGroups": {"groups": [{"name": "x", "members": [527]}]}}}, "members"),
        ({"settings": {"anomalyGroups": {"group": []}}}, "group"),
    ],
)
def test_values_schema_rejects_bad_values(values: dict[str, Any], complaint: str) -> None:
    message = helm_template_error(values)
    assert "values don't meet the specifications of the schema" in message, message
    assert complaint in message, message


def test_contradictory_values_fail_with_a_message() -> None:
    message = helm_template_error({"transformer": {"minReplicas": 3, "maxReplicas": 2}})
    assert "transformer.maxReplicas (2) must be at least transformer.minReplicas (3)" in message
    message = helm_template_error(
        {"models": {"download": {"enabled": True}, "storageUri": "s3://bucket/ag/"}}
    )
    assert "pvc://audioguard-models/" in message


def _notes(tmp_path: Path, values_files: list[Path]) -> str:
    """NOTES.txt as `helm install` would print it (helm template skips NOTES: render it as a value)."""
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    shutil.copy(chart / "templates" / "NOTES.txt", chart / "NOTES.txt")
    (chart / "templates" / "notes-as-value.yaml").write_text(
        'notes: {{ tpl (.Files.Get "NOTES.txt") . | toJson }}\n', "utf-8"
    )
    command = [
        part if part != CHART else chart for part in helm_command("template", values_files=values_files)
    ]
    rendered = run([*command, "--show-only", "templates/notes-as-value.yaml"])
    notes: str = yaml.safe_load(rendered)["notes"]
    return notes


def test_notes_tell_how_to_call_the_service(tmp_path: Path) -> None:
    notes = _notes(tmp_path, [])
    assert "/v2/models/audioguard" in notes
    assert "/model/predict/" in notes
    assert "kubectl -n default wait --for=condition=Ready inferenceservice/audioguard" in notes
    edge_notes = _notes(tmp_path / "edge", variant_files("edge-transformer"))
    assert "audioguard.audioguard.example.com:443" in edge_notes
    assert "port-forward service/audioguard-transformer 5000:5000" in edge_notes
    predictor_notes = _notes(tmp_path / "predictor", variant_files("predictor-only"))
    assert "jsonpath='{.status.url}'" in predictor_notes and "topology=transformer-only" in predictor_notes


def test_values_schema_is_a_closed_json_schema_that_accepts_the_defaults() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text("utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.validate(yaml.safe_load((CHART / "values.yaml").read_text("utf-8")), schema)
    assert schema["additionalProperties"] is False


def _checksums(values: dict[str, Any]) -> dict[str, str]:
    """The config-checksum annotation of each component's pods (InferenceService or edge Deployment)."""
    found = {}
    for doc in yaml.safe_load_all(helm_template(values)):
        if doc and doc["kind"] == "InferenceService":
            for component in ("predictor", "transformer"):
                if component in doc["spec"]:
                    found[component] = doc["spec"][component]["annotations"]["audioguard/config-checksum"]
        if doc and doc["kind"] == "Deployment":
            found["edge"] = doc["spec"]["template"]["metadata"]["annotations"]["audioguard/config-checksum"]
    return found


@pytest.mark.parametrize(
    ("change", "rolled"),
    [
        ({"settings": {"topK": 3}}, {"transformer"}),
        ({"dht": {"url": "http://dht.example:3000"}}, {"transformer"}),
        ({"transformer": {"extraEnv": {"AUDIOGUARD_WINDOW_HOP": 2}}}, {"transformer"}),
        ({"predictor": {"batching": {"maxBatchSize": 8}}}, {"predictor"}),
        ({"predictor": {"extraEnv": {"AUDIOGUARD_PREDICTOR_MAX_BATCH_WAIT_MS": 9}}}, {"predictor"}),
        ({"transformer": {"maxReplicas": 5}}, set()),
    ],
)
def test_an_upgrade_that_changes_a_setting_rolls_exactly_the_component_that_reads_it(
    change: dict[str, Any], rolled: set[str]
) -> None:
    """Settings reach the pods as environment variables read at start: the pod annotation carries a
    digest of them, so `helm upgrade` rolls the pods whose settings changed (tests/cluster runs it)."""
    before, after = _checksums({}), _checksums(change)
    assert {component for component in before if before[component] != after[component]} == rolled


def test_an_edge_transformer_rolls_when_its_settings_change() -> None:
    edge = {"topology": "transformer-only", "edge": {"predictorHost": "p.example:443"}}
    before = _checksums(edge)["edge"]
    assert _checksums({**edge, "settings": {"privacyMinimum": "scramble"}})["edge"] != before
