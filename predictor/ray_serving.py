"""Serve the classifier from Ray Serve replicas (``--ray_replicas N``), for hosts with many cores.

Each replica is a full ``ClassifierModel`` (own weights, own adaptive batcher)
in its own Ray worker process; KServe's HTTP/gRPC front end stays in the main
process and hands every request to a replica through a ``kserve.ray.RayModel``.
Ray's own HTTP proxy is disabled: KServe is the only front door.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from kserve.ray import RayModel

from predictor.model import ClassifierModel
from predictor.settings import PredictorSettings

logger = logging.getLogger(__name__)

#: Requests one replica accepts at once (Ray's default is 5, too few to batch).
MIN_ONGOING_REQUESTS_PER_REPLICA = 64

_PROJECT_ROOT = str(Path(__file__).resolve().parents[1])


class ClassifierReplica(ClassifierModel):
    """One Ray Serve replica: loads its weights when Ray constructs it.

    ``RayModel.load`` reaches only one replica, so every replica loads in its
    constructor instead (``load`` is idempotent).
    """

    def __init__(self, name: str, settings: PredictorSettings) -> None:
        super().__init__(name, settings)
        self.load()


def start_ray_model(name: str, settings: PredictorSettings) -> RayModel:
    """Start a local Ray instance with ``settings.ray_replicas`` replicas; return the loaded front model.

    Returns once every replica has loaded its weights (``serve.run`` waits for
    the deployment to be healthy).
    """
    import ray
    from ray import serve
    from ray.serve.config import ProxyLocation

    # Replicas must import this project even when it is run from a source tree.
    python_path = os.pathsep.join(p for p in (_PROJECT_ROOT, os.environ.get("PYTHONPATH")) if p)
    ray.init(
        ignore_reinit_error=True,
        include_dashboard=False,
        runtime_env={"env_vars": {"PYTHONPATH": python_path}},
    )
    serve.start(proxy_location=ProxyLocation.Disabled)
    deployment = serve.deployment(
        name=f"{name}-classifier",
        num_replicas=settings.ray_replicas,
        ray_actor_options={"num_cpus": settings.ray_cpus_per_replica},
        max_ongoing_requests=max(MIN_ONGOING_REQUESTS_PER_REPLICA, 2 * settings.max_batch_size),
    )(ClassifierReplica)
    logger.info("starting %d Ray Serve replica(s) of %r", settings.ray_replicas, name)
    handle = serve.run(deployment.bind(name, settings), name=name, route_prefix=None)
    model = RayModel(name, handle)
    model.load()
    return model
