"""``python -m transformer``: the transformer as a KServe ModelServer.

KServe's standard flags (``--model_name``, ``--http_port``, ``--grpc_port``,
``--predictor_host``, ``--predictor_protocol``, ``--enable_predictor_health_check``,
...) plus one flag per ``TransformerSettings`` field (``--model_dir`` defaults to
``/mnt/models``, KServe's storage mount).
"""

from __future__ import annotations

if __name__ == "__main__":
    from contract.interrupts import install_exit_on_interrupt

    # Ctrl-C while starting (imports, weights): exit 130 at once, no traceback; KServe puts its
    # graceful handler in place when the server starts
    install_exit_on_interrupt()

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Final

from kserve import ModelServer
from kserve.model_server import parser as kserve_parser
from kserve.predictor_config import PredictorConfig
from pydantic import ValidationError

from contract.cli_style import CliParser
from contract.errors import ModelAssetError
from contract.interrupts import leave, run_interruptibly
from contract.kserve_compat import listen_on, set_grpc_max_receive_message_length
from contract.native_logs import quiet_native_logs
from contract.service_logs import configure_service_logging
from contract.settings_cli import add_settings_arguments, settings_from_args
from transformer.app import answer_readiness, bind_model
from transformer.model import AudioTransformer
from transformer.settings import TransformerSettings

logger = logging.getLogger("transformer")

#: KServe's 600 s default would let a hung predictor hold a caller for 10 minutes.
DEFAULT_PREDICTOR_TIMEOUT_SECONDS: Final = 60
SUPPORTED_PREDICTOR_PROTOCOLS: Final = ("grpc-v2", "v2")
#: Room for the gRPC request around the audio bytes (tensor metadata, parameters).
GRPC_REQUEST_OVERHEAD_BYTES: Final = 64 * 1024


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(prog="python -m transformer", description=__doc__, parents=[kserve_parser])
    add_settings_arguments(parser, TransformerSettings)
    parser.set_defaults(
        predictor_protocol="grpc-v2", predictor_request_timeout_seconds=DEFAULT_PREDICTOR_TIMEOUT_SECONDS
    )
    return parser


def fit_grpc_limit_to_uploads(args: argparse.Namespace, settings: TransformerSettings) -> None:
    """Let a gRPC request carry an audio file as large as ``--max_upload_mb``.

    KServe's gRPC server reads its receive limit (8 MiB by default) from the
    flags KServe parsed itself at import, so that is the value changed here
    (``contract.kserve_compat``); an explicit ``--grpc_max_receive_message_length`` is kept.
    """
    default = kserve_parser.get_default("grpc_max_receive_message_length")
    if args.grpc_max_receive_message_length == default:
        needed = settings.max_upload_bytes + GRPC_REQUEST_OVERHEAD_BYTES
        set_grpc_max_receive_message_length(max(default, needed))


def main(argv: Sequence[str] | None = None) -> int:
    quiet_native_logs()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.configure_logging:
        configure_service_logging(args.log_config_file)
    if not args.predictor_host:
        parser.error("--predictor_host is required (host:port of the predictor)")
    if args.predictor_protocol not in SUPPORTED_PREDICTOR_PROTOCOLS:
        parser.error(f"--predictor_protocol must be one of {', '.join(SUPPORTED_PREDICTOR_PROTOCOLS)}")
    try:
        settings = settings_from_args(TransformerSettings, args)
    except ValidationError as error:
        parser.error(f"invalid setting: {error}")
    fit_grpc_limit_to_uploads(args, settings)
    listen_on(settings.bind_host)
    server = ModelServer(
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        # KServe 0.21 spawns extra workers without the predictor config (501s)
        workers=1,
        predictor_config=PredictorConfig(
            predictor_host=args.predictor_host,
            predictor_protocol=args.predictor_protocol,
            predictor_use_ssl=args.predictor_use_ssl,
            predictor_request_timeout_seconds=args.predictor_request_timeout_seconds,
            predictor_request_retries=args.predictor_request_retries,
            predictor_health_check=args.enable_predictor_health_check,
        ),
    )
    if args.workers != 1:
        logger.warning("--workers %d ignored: the transformer runs one worker (KServe 0.21)", args.workers)
    model = AudioTransformer(args.model_name, settings)
    try:
        run_interruptibly(model.load)  # in a worker thread: Ctrl-C is not held up by C code
    except (ModelAssetError, ValueError) as error:
        # ValueError: InvalidConfiguration of the anomaly groups
        logger.error("cannot start: %s", error)
        return 1
    bind_model(model)
    answer_readiness(server.dataplane, model)
    server.start([model])
    # stopped (the outbox closed, "transformer stopped" logged): no wait for the interpreter's
    # teardown of the worker threads and native runtimes
    leave(0)


if __name__ == "__main__":
    sys.exit(main())
