"""The real single-node Kubernetes + KServe of scripts/cluster.sh, driven from the tests.

``Cluster`` wraps kubectl and helm with the cluster's kubeconfig, makes static hostPath volumes (there
is no provisioner), waits for InferenceServices and rollouts, and gives the address of a Service as the
host reaches it: kube-proxy's iptables rules send the ClusterIP to the pods over the cluster's bridge,
so requests take the same path as a pod's (Service, endpoints, readiness), unlike ``kubectl
port-forward``, which pins one pod.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from tests.support.serverutil import PROJECT_ROOT

SCRIPT = PROJECT_ROOT / "scripts" / "cluster.sh"
CHART = PROJECT_ROOT / "helm" / "audioguard"
#: scripts/cluster.sh's K8S_HOME and its default
K8S_HOME = Path(
    os.environ.get("K8S_HOME")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "audioguard-cluster"
)
TAG = os.environ.get("AUDIOGUARD_IMAGES_TAG", "test")
IMAGES = {
    "transformer": f"localhost/audioguard-transformer:{TAG}",
    "predictor": f"localhost/audioguard-predictor:{TAG}",
    "broker": f"localhost/sifis-dht-broker:{TAG}",
}


class ClusterCommandError(AssertionError):
    """A kubectl/helm/cluster.sh call failed; the message holds its output."""


def _run(argv: list[str], timeout: float, input_text: str | None = None) -> str:
    done = subprocess.run(
        argv, input=input_text, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        shown = " ".join(argv[:6]) + (" ..." if len(argv) > 6 else "")
        raise ClusterCommandError(
            f"{shown} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done.stdout


def poll(condition: Callable[[], Any], what: str, timeout: float, interval: float = 0.5) -> Any:
    """The first truthy value of ``condition()``; AssertionError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def _connects(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class Endpoint:
    """A Service as the host reaches it (the shape tests.support.service_clients expects)."""

    http_url: str
    grpc_address: str


class Cluster:
    """kubectl, helm and cluster.sh against the running cluster under ``home``."""

    def __init__(self, home: Path = K8S_HOME) -> None:
        self.home = home
        self.run_dir = home / "run"
        self.kubeconfig = self.run_dir / "kubeconfig"

    # --- commands ------------------------------------------------------------------------------
    def script(self, *args: str, timeout: float = 1200) -> str:
        return _run(["bash", str(SCRIPT), *args], timeout)

    def kubectl(self, *args: str, timeout: float = 120, input_text: str | None = None) -> str:
        argv = [str(self.home / "bin" / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args]
        return _run(argv, timeout, input_text)

    def helm(self, *args: str, timeout: float = 600) -> str:
        helm = PROJECT_ROOT / ".cache" / "bin" / "helm"
        return _run([str(helm), "--kubeconfig", str(self.kubeconfig), *args], timeout)

    def apply(self, manifest: str, namespace: str = "default") -> None:
        self.kubectl("apply", "-n", namespace, "-f", "-", input_text=manifest)

    def json(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    # --- objects -------------------------------------------------------------------------------
    def namespace(self, name: str) -> None:
        self.apply(f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n")

    def volume(
        self, claim: str, namespace: str, path: Path, size: str = "1Gi", owner: int | None = None
    ) -> None:
        """A static hostPath PersistentVolume reserved for ``namespace/claim`` (no provisioner here).

        A hostPath volume ignores the pod's fsGroup, so a folder the pods write to must belong to
        their uid (``owner``)."""
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o755)
        if owner is not None:
            os.chown(path, owner, owner)
        name = f"{namespace}-{claim}"
        self.apply(
            "apiVersion: v1\nkind: PersistentVolume\n"
            f"metadata: {{name: {name}}}\n"
            f"spec: {{capacity: {{storage: {size}}}, accessModes: [ReadWriteOnce, ReadWriteMany],"
            f" storageClassName: '', persistentVolumeReclaimPolicy: Retain,"
            f" claimRef: {{namespace: {namespace}, name: {claim}}},"
            f" hostPath: {{path: {path}, type: Directory}}}}\n"
        )

    def claim(self, claim: str, namespace: str, size: str = "1Gi") -> None:
        """The claim for a volume made by ``volume`` (for the weights, which no manifest claims)."""
        self.apply(
            "apiVersion: v1\nkind: PersistentVolumeClaim\n"
            f"metadata: {{name: {claim}}}\n"
            f"spec: {{accessModes: [ReadWriteOnce], storageClassName: '', volumeName: {namespace}-{claim},"
            f" resources: {{requests: {{storage: {size}}}}}}}\n",
            namespace,
        )

    def storage(self, namespace: str, weights: Path, models_claim: str = "audioguard-models") -> Path:
        """The namespace, the weights' claim (``models_claim``) on a volume of ``weights``, and a volume
        for the outbox's claim ``audioguard-outbox`` (the chart's and the manifests'); returns the
        outbox's folder."""
        self.namespace(namespace)
        self.volume(models_claim, namespace, weights, "2Gi")
        self.claim(models_claim, namespace, "2Gi")
        outbox = self.run_dir / "volumes" / f"outbox-{namespace}"
        self.volume("audioguard-outbox", namespace, outbox, owner=1000)
        return outbox

    def drop_storage(self, namespace: str, models_claim: str = "audioguard-models") -> None:
        for claim in (models_claim, "audioguard-outbox"):
            self.delete_volume(claim, namespace)

    @contextlib.contextmanager
    def helm_release(self, namespace: str, *args: str, ready: str = "isvc") -> Iterator[float]:
        """``helm install audioguard <chart> -n namespace ARGS``, waited for (``ready``: "isvc" for the
        InferenceService, "deploy" for the edge transformer's Deployment); yields the seconds that took
        and uninstalls at the end."""
        started = time.monotonic()
        self.helm("install", "audioguard", str(CHART), "-n", namespace, *args)
        if ready == "isvc":
            self.wait_isvc_ready("audioguard", namespace)
        else:
            self.rollout("audioguard-transformer", namespace)
        try:
            yield time.monotonic() - started
        finally:
            self.helm("uninstall", "audioguard", "-n", namespace, "--wait")

    def delete_volume(self, claim: str, namespace: str) -> None:
        self.kubectl("delete", "pvc", claim, "-n", namespace, "--ignore-not-found", "--wait=true")
        self.kubectl("delete", "pv", f"{namespace}-{claim}", "--ignore-not-found", "--wait=true")

    # --- waiting -------------------------------------------------------------------------------
    def wait_isvc_ready(self, name: str, namespace: str, timeout: float = 600) -> None:
        try:
            wait = f"--timeout={int(timeout)}s"
            self.kubectl(
                "wait", "--for=condition=Ready", f"isvc/{name}", "-n", namespace, wait, timeout=timeout + 30
            )
        except ClusterCommandError as error:
            raise ClusterCommandError(f"{error}\n{self.describe(namespace)}") from None

    def rollout(self, deployment: str, namespace: str, timeout: float = 600) -> None:
        self.kubectl(
            "rollout", "status", f"deploy/{deployment}", "-n", namespace, f"--timeout={int(timeout)}s",
            timeout=timeout + 30,
        )  # fmt: skip

    def describe(self, namespace: str) -> str:
        """Pods, their events and the InferenceServices' conditions: what a failed wait shows."""
        parts = []
        for args in (
            ("get", "pods,isvc", "-n", namespace, "-o", "wide"),
            ("describe", "pods", "-n", namespace),
        ):
            with contextlib.suppress(ClusterCommandError, subprocess.TimeoutExpired):
                parts.append(self.kubectl(*args)[-6000:])
        return "\n".join(parts)

    def pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return list(self.json("pods", "-n", namespace, "-l", selector)["items"])

    def ready_pods(self, namespace: str, selector: str) -> list[str]:
        """Names of the pods that are Ready and not being deleted."""
        names = []
        for pod in self.pods(namespace, selector):
            conditions = {c["type"]: c["status"] for c in pod["status"].get("conditions", [])}
            if conditions.get("Ready") == "True" and not pod["metadata"].get("deletionTimestamp"):
                names.append(pod["metadata"]["name"])
        return names

    # --- reaching Services ---------------------------------------------------------------------
    def service(
        self, name: str, namespace: str, http_port: int = 80, grpc_port: int | None = None
    ) -> Endpoint:
        """The Service at its ClusterIP, which the host reaches through kube-proxy's rules."""
        ip = self.kubectl("get", "svc", name, "-n", namespace, "-o", "jsonpath={.spec.clusterIP}").strip()
        assert re.fullmatch(r"[0-9.]+", ip), f"Service {namespace}/{name} has no ClusterIP: {ip!r}"
        # a rollout can be complete before kube-proxy has written the Service's rules
        poll(lambda: _connects(ip, http_port), f"Service {namespace}/{name} to accept connections", 60)
        return Endpoint(f"http://{ip}:{http_port}", f"{ip}:{grpc_port or http_port}")

    @contextlib.contextmanager
    def port_forward(self, target: str, port: int, namespace: str) -> Iterator[int]:
        """``kubectl port-forward`` to a loopback port (yielded) for the duration of the block."""
        argv = [str(self.home / "bin" / "kubectl"), "--kubeconfig", str(self.kubeconfig)]
        forward = subprocess.Popen(
            [*argv, "port-forward", "-n", namespace, target, f":{port}"], stdout=subprocess.PIPE, text=True
        )
        try:
            assert forward.stdout is not None
            match = re.search(r"127\.0\.0\.1:(\d+)", forward.stdout.readline())
            assert match, f"kubectl port-forward {target} printed no local port"
            yield int(match[1])
        finally:
            forward.terminate()
            forward.wait(timeout=10)


def site_kustomization(
    site: Path,
    base: Path,
    *,
    images: dict[str, str],
    pull_never: list[tuple[str, str, str]],
    components: tuple[Path, ...] = (),
    resources: dict[str, str] | None = None,
) -> Path:
    """A site's kustomization over ``base`` (kustomize refuses absolute paths): ``images`` maps an
    image name to the loaded one, ``pull_never`` names (kind, name, container path) whose
    imagePullPolicy becomes Never (the images exist only in the node's containerd), ``resources``
    are extra files (name -> YAML) of the site."""
    site.mkdir(parents=True, exist_ok=True)
    extra = dict(resources or {})
    for name, text in extra.items():
        (site / name).write_text(text)
    lines = [
        "apiVersion: kustomize.config.k8s.io/v1beta1",
        "kind: Kustomization",
        f"resources: [{', '.join([os.path.relpath(base, site), *extra])}]",
    ]
    if components:
        lines.append(f"components: [{', '.join(os.path.relpath(c, site) for c in components)}]")
    lines.append("images:")
    for name, loaded in images.items():
        repository, tag = loaded.rsplit(":", 1)
        lines.append(f"  - {{name: {name}, newName: {repository}, newTag: {tag}}}")
    lines.append("patches:")
    for kind, name, container in pull_never:
        lines += [
            f"  - target: {{kind: {kind}, name: {name}}}",
            "    patch: |-",
            f"      - {{op: replace, path: {container}/imagePullPolicy, value: Never}}",
        ]
    (site / "kustomization.yaml").write_text("\n".join(lines) + "\n")
    return site


class ClusterBroker:
    """The SIFIS DHT broker of manifests/dht-broker, through its Service (REST API)."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.cluster = cluster
        self.namespace = namespace

    @property
    def url(self) -> str:
        return self.cluster.service("sifis-dht", self.namespace, 3000).http_url

    def get(self, topic_name: str, topic_uuid: str) -> Any:
        """The stored value, or None."""
        answer = requests.get(f"{self.url}/topic_name/{topic_name}/topic_uuid/{topic_uuid}", timeout=10)
        answer.raise_for_status()
        return answer.json().get("value")

    def scale(self, replicas: int) -> None:
        """Stop (0) or start (1) the broker and wait for it."""
        self.cluster.kubectl("scale", "deploy/sifis-dht", f"--replicas={replicas}", "-n", self.namespace)
        if replicas:
            self.cluster.rollout("sifis-dht", self.namespace, timeout=180)
        else:
            poll(
                lambda: not self.cluster.pods(self.namespace, "app.kubernetes.io/name=sifis-dht"),
                "the broker pod to go",
                120,
            )


def site_values(path: Path, *, dht_url: str = "", groups: dict[str, Any] | None = None, **extra: Any) -> Path:
    """Helm values of the test site: the loaded images (never pulled), requests small enough for two
    transformer pods at once on a 2-core node (a rolling update's surge), the DHT and anomaly groups."""
    values: dict[str, Any] = {
        "images": {
            component: {"repository": IMAGES[component].rsplit(":", 1)[0], "tag": TAG, "pullPolicy": "Never"}
            for component in ("transformer", "predictor")
        },
        "transformer": {"resources": _resources("400m", "1Gi", "2", "4Gi")},
        "predictor": {"resources": _resources("200m", "512Mi", "1", "2Gi")},
        **extra,
    }
    if dht_url:
        values["dht"] = {"url": dht_url}
    if groups:
        values["settings"] = {"anomalyGroups": groups}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values, indent=1))  # JSON is YAML
    return path


def _resources(cpu: str, memory: str, cpu_limit: str, memory_limit: str) -> dict[str, Any]:
    return {
        "requests": {"cpu": cpu, "memory": memory, "ephemeral-storage": "256Mi"},
        "limits": {"cpu": cpu_limit, "memory": memory_limit, "ephemeral-storage": "2Gi"},
    }


@dataclass(frozen=True)
class Outcome:
    """One request of a ``RequestStream``: its HTTP status (or the exception's name) and Retry-After."""

    at: float
    status: int | str
    retry_after: str | None
    detail: str


class RequestStream:
    """``clients`` threads sending one short v2 REST request after another to ``endpoint`` (each on
    a new connection, so every request goes through the Service's current endpoints) until stopped."""

    def __init__(self, endpoint: Endpoint, audio: bytes, clients: int = 2, model: str = "audioguard") -> None:
        self.url = f"{endpoint.http_url}/v2/models/{model}/infer"
        encoded = base64.b64encode(audio).decode()
        self.body = {
            "inputs": [{"name": "audio", "shape": [1], "datatype": "BYTES", "data": [encoded]}],
            "parameters": {"content_encoding": "base64"},
        }
        self.outcomes: list[Outcome] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._send, daemon=True) for _ in range(clients)]

    def _send(self) -> None:
        while not self._stop.is_set():
            at = time.monotonic()
            try:
                answer = requests.post(self.url, json=self.body, timeout=60, headers={"Connection": "close"})
                detail = "" if answer.status_code == 200 else answer.text[:200]
                self.outcomes.append(
                    Outcome(at, answer.status_code, answer.headers.get("Retry-After"), detail)
                )
            except requests.RequestException as error:
                self.outcomes.append(Outcome(at, type(error).__name__, None, str(error)[:200]))

    def __enter__(self) -> RequestStream:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=90)

    def count_since(self, start: float, status: int | str = 200) -> int:
        return sum(1 for outcome in list(self.outcomes) if outcome.at >= start and outcome.status == status)

    def summary(self) -> dict[int | str, int]:
        counts: dict[int | str, int] = {}
        for outcome in self.outcomes:
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
        return counts
