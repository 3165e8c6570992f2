"""What every rendering of the deployment (chart variant or kustomize overlay) must satisfy.

Each ``check_*`` function asserts one rule over the parsed documents and names
the offending object; ``check_deployment_policy`` runs them all.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic_settings import BaseSettings

from predictor.settings import PredictorSettings
from tests.deploy.workloads import Workload, flag_values, volume_for_mount, workloads
from transformer.analysis.anomaly_groups import load_anomaly_groups
from transformer.settings import TransformerSettings

MODEL_DIR = "/mnt/models"
#: The flags both the images' CMD and the manifests must give the transformer.
TRANSFORMER_FLAGS = {"--workers": "1", "--predictor_protocol": "grpc-v2", "--model_dir": MODEL_DIR}
OUTBOX_DIR = "/var/lib/audioguard"
S = TypeVar("S", bound=BaseSettings)


def settings_field(env_name: str, settings_cls: type[BaseSettings]) -> str:
    """The settings field an AUDIOGUARD_* variable sets (AssertionError if none)."""
    prefix = str(settings_cls.model_config.get("env_prefix", ""))
    assert env_name.startswith(prefix), f"{env_name} lacks the {settings_cls.__name__} prefix {prefix}"
    field = env_name.removeprefix(prefix).lower()
    assert field in settings_cls.model_fields, (
        f"{env_name} is not a {settings_cls.__name__} setting "
        f"(fields: {', '.join(settings_cls.model_fields)})"
    )
    return field


def settings_from_env(env: Mapping[str, str], settings_cls: type[S]) -> S:
    """Build the settings object from the AUDIOGUARD_* part of a container environment."""
    values: dict[str, Any] = {
        settings_field(name, settings_cls): value
        for name, value in env.items()
        if name.startswith("AUDIOGUARD_")
    }
    return settings_cls(**values)


SETTINGS_OF: dict[str, type[BaseSettings]] = {
    "transformer": TransformerSettings,
    "predictor": PredictorSettings,
}


def check_settings_env(workload: Workload) -> None:
    """Every AUDIOGUARD_* variable is a real field of the component's settings and parses."""
    settings_from_env(workload.env, SETTINGS_OF[workload.component])


def _quantity(value: str | int | float) -> float:
    text = str(value)
    suffixes = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9}
    for suffix, scale in sorted(suffixes.items(), key=lambda item: -len(item[0])):
        if text.endswith(suffix):
            return float(text.removesuffix(suffix)) * scale
    return float(text)


def check_resources(workload: Workload) -> None:
    resources = workload.container["resources"]
    for name in ("cpu", "memory"):
        request, limit = resources["requests"][name], resources["limits"][name]
        assert _quantity(request) <= _quantity(limit), f"{workload.component}: {name} request > limit"


def check_threads_match_cpu(workload: Workload) -> None:
    """The inference pools use as many threads as the CPU limit allows: ONNX Runtime's in the predictor,
    ONNX Runtime's and the worker pool in the transformer; neither has TensorFlow to configure."""
    cpu_limit = _quantity(workload.container["resources"]["limits"]["cpu"])
    if workload.component == "transformer":
        threads = {workload.env["AUDIOGUARD_VGGISH_THREADS"], workload.env["AUDIOGUARD_INFERENCE_THREADS"]}
    else:
        threads = {workload.env["AUDIOGUARD_PREDICTOR_THREADS"]}
    assert not any(name.startswith("TF_") for name in workload.env), "no service has TensorFlow"
    assert threads == {str(int(cpu_limit))}, (
        f"{workload.component}: threads {threads} vs cpu limit {cpu_limit}"
    )


def check_security(workload: Workload) -> None:
    # Neither service calls the Kubernetes API: no token in the pod.
    assert workload.pod.get("automountServiceAccountToken") is False, workload.component
    pod_context = workload.pod["securityContext"]
    assert pod_context["runAsNonRoot"] is True and pod_context["runAsUser"] > 0
    context = workload.container["securityContext"]
    assert context["runAsNonRoot"] is True, workload.component
    assert context["allowPrivilegeEscalation"] is False, workload.component
    assert context["readOnlyRootFilesystem"] is True, workload.component
    assert context["capabilities"] == {"drop": ["ALL"]}, workload.component
    assert not context.get("privileged", False), workload.component
    # A read-only root needs a writable /tmp (TensorFlow, numba and matplotlib caches go there).
    assert "emptyDir" in volume_for_mount(workload, "/tmp"), workload.component


def check_transformer_memory_only_tmp(workload: Workload) -> None:
    """Audio never touches a disk: the transformer's only scratch space lives in memory."""
    assert volume_for_mount(workload, "/tmp")["emptyDir"].get("medium") == "Memory"


def check_outbox_volume(workload: Workload) -> None:
    outbox = Path(workload.env["AUDIOGUARD_OUTBOX_PATH"])
    assert str(outbox.parent) == OUTBOX_DIR, outbox
    volume = volume_for_mount(workload, OUTBOX_DIR)
    assert "persistentVolumeClaim" in volume or "emptyDir" in volume, volume


def _declared_ports(workload: Workload) -> dict[int, str]:
    return {port["containerPort"]: port.get("name", "") for port in workload.container.get("ports", [])}


def check_probes(workload: Workload, knative: bool) -> None:
    ports = _declared_ports(workload)
    for probe_name, route in (("readinessProbe", "/v2/health/ready"), ("livenessProbe", "/v2/health/live")):
        probe = workload.container[probe_name]
        if "httpGet" in probe:
            assert probe["httpGet"]["path"] == route, f"{workload.component} {probe_name}"
            port = probe["httpGet"]["port"]
        else:
            # Knative lets the predictor expose only its h2c (gRPC) port: a TCP probe on it.
            assert knative and workload.component == "predictor", f"{workload.component} {probe_name}"
            port = probe["tcpSocket"]["port"]
        assert port in ports, f"{workload.component} {probe_name} probes undeclared port {port}"


def check_ports(workload: Workload, knative: bool) -> None:
    ports = _declared_ports(workload)
    flags = flag_values(workload.args)
    assert flags["--http_port"] == "8080" and flags["--grpc_port"] == "8081", flags
    if knative:
        # Knative: one port per container; the predictor's speaks h2c to the transformer's gRPC client.
        expected = {8081: "h2c"} if workload.component == "predictor" else {8080: "http1"}
        assert ports == expected, f"{workload.component}: {ports}"
    else:
        assert set(ports) == {8080, 8081}, f"{workload.component}: {ports}"
        if workload.component == "predictor":
            # KServe's Service maps port 80 to the first container port: gRPC, where the
            # transformer's client connects (--predictor_host <name>-predictor.<namespace>).
            assert workload.container["ports"][0]["containerPort"] == 8081


def check_transformer_flags(workload: Workload, predictor: Workload | None) -> None:
    flags = flag_values(workload.args)
    for flag, value in TRANSFORMER_FLAGS.items():
        assert flags.get(flag) == value, f"transformer {flag}: {flags.get(flag)!r}, want {value!r}"
    assert "--enable_predictor_health_check" in flags
    if workload.source_kind == "InferenceService":
        assert "--predictor_host" not in flags, "KServe appends --predictor_host <name>-predictor.<namespace>"
        assert "containerConcurrency" not in workload.spec, "KServe 0.21 turns it into --workers N (501s)"
    else:
        assert flags.get("--predictor_host"), "the edge transformer needs the remote predictor's host"
    if predictor is not None:
        # The transformer calls the predictor under its own model name.
        assert flags["--model_name"] == flag_values(predictor.args)["--model_name"]


def check_predictor_container(workload: Workload) -> None:
    assert workload.container["name"] == "kserve-container"
    assert workload.env["PROTOCOL"] == "v2"
    assert flag_values(workload.args)["--model_dir"] == MODEL_DIR


def check_storage(workload: Workload) -> None:
    if workload.source_kind == "InferenceService":
        # STORAGE_URI makes KServe's storage initializer fill /mnt/models.
        assert workload.env["STORAGE_URI"], workload.component
        assert workload.container["name"] == "kserve-container"


def check_autoscaling(isvc: Mapping[str, Any]) -> None:
    annotations = isvc["metadata"].get("annotations", {})
    mode = annotations["serving.kserve.io/deploymentMode"]
    assert mode in ("Knative", "Standard"), mode
    for component in ("predictor", "transformer"):
        spec = isvc["spec"].get(component)
        if spec is None:
            continue
        # >= 1: an always-on safety detector, and no cold start while weights load.
        assert spec["minReplicas"] >= 1, f"{component}.minReplicas"
        assert spec["maxReplicas"] >= spec["minReplicas"], f"{component}.maxReplicas"
        if mode == "Knative":
            assert spec["scaleMetric"] == "concurrency" and spec["scaleTarget"] >= 1, component
        else:
            assert annotations["serving.kserve.io/autoscalerClass"] == "hpa"
            assert spec["scaleMetric"] == "cpu" and spec["scaleMetricType"] == "Utilization", component
            assert 1 <= spec["scaleTarget"] <= 100, component
    transformer = isvc["spec"].get("transformer")
    if transformer is not None and "logger" in transformer:
        # A request log would copy every raw recording to the sink.
        assert transformer["logger"]["mode"] == "response"
    assert "logger" not in isvc["spec"]["predictor"]


def _selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, f"unexpected selector {selector}"
    return all(labels.get(key) == value for key, value in selector.get("matchLabels", {}).items())


def check_network_policy(docs: list[dict[str, Any]], found: Mapping[str, Workload]) -> None:
    """Only the transformer (and the serving gateways) reach the predictor; the predictor reaches
    only DNS and the model storage, so the DHT hears from the transformer alone."""
    predictor = found.get("predictor")
    if predictor is None:
        return
    policies = [
        doc for doc in docs
        if doc["kind"] == "NetworkPolicy" and _selects(doc["spec"]["podSelector"], predictor.pod_labels)
    ]  # fmt: skip
    assert len(policies) == 1, f"{len(policies)} NetworkPolicies select the predictor"
    spec = policies[0]["spec"]
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
    transformer = found.get("transformer")
    for rule in spec["ingress"]:
        assert rule.get("from"), "an ingress rule without 'from' admits every pod"
        for peer in rule["from"]:
            if "podSelector" in peer:
                assert "namespaceSelector" not in peer
                assert transformer is not None and _selects(peer["podSelector"], transformer.pod_labels)
                assert not _selects(peer["podSelector"], predictor.pod_labels)
            else:
                names = peer["namespaceSelector"]["matchExpressions"][0]["values"]
                assert (
                    peer["namespaceSelector"]["matchExpressions"][0]["key"] == "kubernetes.io/metadata.name"
                )
                assert names and "default" not in names, names
    egress_ports = set()
    for rule in spec["egress"]:
        assert rule.get("ports"), "an egress rule without ports lets the predictor reach anything"
        egress_ports |= {port["port"] for port in rule["ports"]}
    dht_url = transformer.env.get("AUDIOGUARD_DHT_URL") if transformer is not None else None
    if dht_url:
        assert urlsplit(dht_url).port not in egress_ports, "the predictor could reach the DHT"
    assert egress_ports <= {53, 443, 15012}, egress_ports


def check_disruption_budgets(docs: list[dict[str, Any]], found: Mapping[str, Workload]) -> None:
    budgets = [doc for doc in docs if doc["kind"] == "PodDisruptionBudget"]
    for component, workload in found.items():
        selecting = [pdb for pdb in budgets if _selects(pdb["spec"]["selector"], workload.pod_labels)]
        assert len(selecting) == 1, f"{len(selecting)} PodDisruptionBudgets select the {component}"
        # maxUnavailable >= 1 lets a drain proceed even at minReplicas 1.
        assert selecting[0]["spec"]["maxUnavailable"] >= 1
        others = [w for w in found.values() if w is not workload]
        assert not any(_selects(selecting[0]["spec"]["selector"], w.pod_labels) for w in others)


def check_secrets_hold_dht_url(docs: list[dict[str, Any]]) -> None:
    """The DHT URL may carry credentials: it lives in a Secret, never in a ConfigMap."""
    for doc in docs:
        if doc["kind"] == "ConfigMap":
            assert "AUDIOGUARD_DHT_URL" not in doc.get("data", {}), doc["metadata"]["name"]


def check_anomaly_groups(docs: list[dict[str, Any]], workload: Workload) -> None:
    """An anomaly-groups override is mounted where the setting points and loads with the real loader."""
    path = workload.env.get("AUDIOGUARD_ANOMALY_GROUPS_FILE")
    if path is None:
        return
    volume = volume_for_mount(workload, str(Path(path).parent))
    config_maps = {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == "ConfigMap"}
    document = config_maps[volume["configMap"]["name"]]["data"][Path(path).name]
    with tempfile.TemporaryDirectory() as folder:
        override = Path(folder) / "anomaly_groups.json"
        override.write_text(document, "utf-8")
        groups = load_anomaly_groups(override)
    overrides = {entry["name"]: entry for entry in json.loads(document)["groups"]}
    for group in groups:
        if group.name in overrides:
            entry = overrides[group.name]
            assert group.threshold == entry.get("threshold", group.threshold)
            assert group.enabled == entry.get("enabled", group.enabled)


def check_deployment_policy(docs: list[dict[str, Any]]) -> dict[str, Workload]:
    """Run every rule over one rendering; returns its workloads for further checks."""
    found = workloads(docs)
    assert found, "nothing runs"
    isvcs = [doc for doc in docs if doc["kind"] == "InferenceService"]
    assert len(isvcs) <= 1
    knative = (
        bool(isvcs) and isvcs[0]["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Knative"
    )
    for isvc in isvcs:
        check_autoscaling(isvc)
    for workload in found.values():
        is_knative = knative and workload.source_kind == "InferenceService"
        check_settings_env(workload)
        check_resources(workload)
        check_threads_match_cpu(workload)
        check_security(workload)
        check_probes(workload, is_knative)
        check_ports(workload, is_knative)
        check_storage(workload)
    if "transformer" in found:
        transformer = found["transformer"]
        check_transformer_flags(transformer, found.get("predictor"))
        check_transformer_memory_only_tmp(transformer)
        check_outbox_volume(transformer)
        check_anomaly_groups(docs, transformer)
    if "predictor" in found:
        check_predictor_container(found["predictor"])
    check_network_policy(docs, found)
    check_disruption_budgets(docs, found)
    check_secrets_hold_dht_url(docs)
    return found
