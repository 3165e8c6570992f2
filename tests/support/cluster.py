"""The real single-node Kubernetes + KServe of scripts/cluster.sh, driven from the tests.

``Cluster`` wraps kubectl and helm with the cluster's kubeconfig, makes static hostPath volumes (there
is no provisioner), waits for InferenceServices and rollouts, and gives the address of a Service as the
host reaches it: kube-proxy's iptables rules send the ClusterIP to the pods over the cluster's bridge,
so requests take the same path as a pod's (Service, endpoints, readiness), unlike ``kubectl
port-forward``, which pins one pod.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.serverutil import PROJECT_ROOT

SCRIPT = PROJECT_ROOT / "scripts" / "cluster.sh"
K8S_HOME = Path(os.environ.get("K8S_HOME", PROJECT_ROOT / ".cache" / "cluster"))
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
