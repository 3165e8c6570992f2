"""The deployment policy checks are not vacuous: each rule rejects a rendering that breaks it."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from tests.deploy.policy import check_deployment_policy
from tests.deploy.tools import MANIFESTS, documents, kustomize_build

Docs = list[dict[str, Any]]


@pytest.fixture(scope="module")
def knative_docs() -> Docs:
    return documents(kustomize_build(MANIFESTS / "overlays" / "knative"))


def _isvc(docs: Docs) -> dict[str, Any]:
    return next(doc for doc in docs if doc["kind"] == "InferenceService")


def _container(docs: Docs, component: str) -> dict[str, Any]:
    container: dict[str, Any] = _isvc(docs)["spec"][component]["containers"][0]
    return container


def _config_map(docs: Docs, name: str) -> dict[str, str]:
    data: dict[str, str] = next(
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == name
    )["data"]
    return data


def _set_flag(docs: Docs, component: str, flag: str, value: str) -> None:
    args = _container(docs, component)["args"]
    args[args.index(flag) + 1] = value


def _drop(docs: Docs, kind: str) -> None:
    docs[:] = [doc for doc in docs if doc["kind"] != kind]


BREAKAGES: dict[str, Callable[[Docs], None]] = {
    "containerConcurrency on the transformer": lambda d: _isvc(d)["spec"]["transformer"].update(
        containerConcurrency=4
    ),
    "scale to zero": lambda d: _isvc(d)["spec"]["predictor"].update(minReplicas=0),
    "two transformer workers": lambda d: _set_flag(d, "transformer", "--workers", "2"),
    "REST v2 to the predictor": lambda d: _set_flag(d, "transformer", "--predictor_protocol", "v2"),
    "model names differ": lambda d: _set_flag(d, "predictor", "--model_name", "other"),
    "misspelt transformer setting": lambda d: _config_map(d, "audioguard-transformer").update(
        AUDIOGUARD_PRIVACY_MINIMUN="speech_mask"
    ),
    "unparsable setting": lambda d: _config_map(d, "audioguard-transformer").update(AUDIOGUARD_TOP_K="five"),
    "transformer setting on the predictor": lambda d: _config_map(d, "audioguard-predictor").update(
        AUDIOGUARD_TOP_K="5"
    ),
    "DHT URL in a ConfigMap": lambda d: _config_map(d, "audioguard-transformer").update(
        AUDIOGUARD_DHT_URL="http://dht:3000"
    ),
    "service account token mounted": lambda d: _isvc(d)["spec"]["predictor"].pop(
        "automountServiceAccountToken"
    ),
    "root user": lambda d: _isvc(d)["spec"]["transformer"]["securityContext"].update(runAsNonRoot=False),
    "writable root filesystem": lambda d: _container(d, "predictor")["securityContext"].update(
        readOnlyRootFilesystem=False
    ),
    "privilege escalation": lambda d: _container(d, "transformer")["securityContext"].update(
        allowPrivilegeEscalation=True
    ),
    "capabilities kept": lambda d: _container(d, "transformer")["securityContext"]["capabilities"].update(
        drop=["NET_RAW"]
    ),
    "audio scratch on disk": lambda d: _isvc(d)["spec"]["transformer"]["volumes"][0]["emptyDir"].pop(
        "medium"
    ),
    "no NetworkPolicy": lambda d: _drop(d, "NetworkPolicy"),
    "no PodDisruptionBudget": lambda d: _drop(d, "PodDisruptionBudget"),
    "predictor open to every pod": lambda d: next(x for x in d if x["kind"] == "NetworkPolicy")["spec"][
        "ingress"
    ].append({"from": [{"podSelector": {}}]}),
    "predictor egress unrestricted": lambda d: next(x for x in d if x["kind"] == "NetworkPolicy")["spec"][
        "egress"
    ].append({"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}),
    "readiness on the wrong route": lambda d: _container(d, "transformer")["readinessProbe"][
        "httpGet"
    ].update(path="/healthz"),
    "two ports under Knative": lambda d: _container(d, "transformer")["ports"].append(
        {"name": "grpc", "containerPort": 8081}
    ),
    "request above limit": lambda d: _container(d, "predictor")["resources"]["requests"].update(cpu="2"),
    "threads beyond the CPU limit": lambda d: _config_map(d, "audioguard-transformer").update(
        AUDIOGUARD_INFERENCE_THREADS="8"
    ),
    "request payload logging": lambda d: _isvc(d)["spec"]["transformer"].update(
        logger={"mode": "all", "url": "http://sink"}
    ),
    "outbox outside its volume": lambda d: _config_map(d, "audioguard-transformer").update(
        AUDIOGUARD_OUTBOX_PATH="/tmp/outbox.sqlite3"
    ),
}


def test_the_untouched_rendering_passes(knative_docs: Docs) -> None:
    assert set(check_deployment_policy(copy.deepcopy(knative_docs))) == {"transformer", "predictor"}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_policy_rejects(breakage: str, knative_docs: Docs) -> None:
    docs = copy.deepcopy(knative_docs)
    BREAKAGES[breakage](docs)
    with pytest.raises((AssertionError, ValueError)):  # pydantic ValidationError is a ValueError
        check_deployment_policy(docs)
