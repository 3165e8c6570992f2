"""``python -m predictor``: the KServe predictor serving the attention classifier.

Flags: KServe's standard model-server flags (``--model_name``, ``--http_port``,
``--grpc_port``, ``--workers``, ...) plus every ``PredictorSettings`` field
(``--model_dir``, ``--max_batch_size``, ``--max_batch_wait_ms``,
``--ray_replicas``, ...; also settable as ``AUDIOGUARD_PREDICTOR_*``).
The weights load before the server starts, so it is ready as soon as it listens.
"""

from __future__ import annotations

if __name__ == "__main__":
    from contract.interrupts import install_exit_on_interrupt

    # Ctrl-C while starting (imports, weights): exit 130 at once, no traceback; KServe puts its
    # graceful handler in place when the server starts
    install_exit_on_interrupt()

import argparse
import importlib.util
import os
import signal
import sys
import threading
from collections.abc import Sequence

import kserve
from kserve import model_server
from kserve.model import InferenceModel

from contract.assets import PREDICTOR_ASSETS, asset_report, log_asset_report, require_assets
from contract.cli_style import CliParser
from contract.errors import ModelAssetError
from contract.interrupts import leave, run_interruptibly
from contract.kserve_compat import listen_on
from contract.native_logs import quiet_native_logs
from contract.service_logs import configure_service_logging
from contract.settings_cli import add_settings_arguments, settings_from_args
from predictor.model import WORKER_LOAD_FAILED, ClassifierModel, model_parameters
from predictor.routes import register_served_model
from predictor.settings import PredictorSettings


def build_parser() -> argparse.ArgumentParser:
    """KServe's flags plus one flag per PredictorSettings field."""
    parser = CliParser(
        prog="python -m predictor",
        description="KServe v2 predictor: multi-level attention classifier over VGGish embeddings.",
        parents=[model_server.parser],
    )
    add_settings_arguments(parser, PredictorSettings)
    return parser


def build_model(name: str, settings: PredictorSettings, *, workers: int = 1) -> InferenceModel:
    """The loaded model to serve: in process, or a front for Ray Serve replicas.

    Raises:
        MissingModelAsset: classifier_model.h5 is absent (message names it and the weights commands).
        ModelAssetError: the file is unreadable or has another layout.
        ValueError: Ray replicas combined with several workers, or asked of an installation without Ray.
    """
    if settings.ray_replicas == 0:
        model = ClassifierModel(name, settings)
        model.load()
        return model
    if workers > 1:
        raise ValueError("--ray_replicas cannot be combined with --workers > 1 (Ray does the scaling)")
    if importlib.util.find_spec("ray") is None:
        raise ValueError(
            "--ray_replicas needs Ray, which this installation lacks: use the predictor image built with "
            "--build-arg RAY=true (the -ray variant), or pip install 'ray[serve]'"
        )
    require_assets(settings.model_dir, PREDICTOR_ASSETS)
    report = asset_report(settings.model_dir, PREDICTOR_ASSETS)
    log_asset_report(report, "predictor")
    from predictor.ray_serving import start_ray_model

    ray_model = start_ray_model(name, settings)
    parameters = model_parameters(settings, report)
    register_served_model(ray_model, lambda: parameters, settings.max_request_windows)
    return ray_model


def main(argv: Sequence[str] | None = None) -> None:
    quiet_native_logs()
    args = build_parser().parse_args(argv)
    if args.configure_logging:
        configure_service_logging(args.log_config_file)
    try:
        settings = settings_from_args(PredictorSettings, args)
        if settings.ray_replicas:  # Ray Serve's handle is made on the main thread (else it never answers)
            model = build_model(args.model_name, settings, workers=args.workers)
        else:  # in a worker thread, so that Ctrl-C is not held up by the h5 load's C code
            model = run_interruptibly(build_model, args.model_name, settings, workers=args.workers)
    except ModelAssetError as error:
        sys.exit(f"predictor: cannot start: {error.message}")
    except ValueError as error:  # pydantic's ValidationError is a ValueError
        sys.exit(f"predictor: invalid settings: {error}")
    listen_on(settings.bind_host)
    worker_failed = stop_when_a_worker_cannot_load()
    kserve.ModelServer(
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        workers=args.workers,
        max_threads=args.max_threads,
        max_asyncio_workers=args.max_asyncio_workers,
        enable_grpc=args.enable_grpc,
        enable_docs_url=args.enable_docs_url,
        enable_latency_logging=args.enable_latency_logging,
        access_log_format=args.access_log_format,
        event_loop=args.event_loop,
        timeout_keep_alive=args.timeout_keep_alive,
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
    ).start([model])
    if worker_failed.is_set():
        sys.exit("predictor: a worker process could not load the weights (see the log above); stopped")
    if settings.ray_replicas == 0:
        # stopped and logged so, nothing left to save: no waiting on the runtime's teardown
        # (Ray's replicas are left to Ray's own exit handlers)
        leave(0)


def stop_when_a_worker_cannot_load() -> threading.Event:
    """On a worker's ``WORKER_LOAD_FAILED`` signal, stop the server (KServe's SIGTERM path) and
    remember it, so the process exits non-zero and Kubernetes restarts it."""
    failed = threading.Event()

    def on_worker_failure(signum: int, frame: object) -> None:
        failed.set()
        os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(WORKER_LOAD_FAILED, on_worker_failure)
    return failed


if __name__ == "__main__":
    main()
