"""contract.kserve_compat: the KServe version gate, and that each patch still takes hold.

The tests of "KServe still has this name" fail after an upgrade that moved what
a patch replaces: then the patch silently does nothing, which is what the
version gate exists to prevent.
"""

from __future__ import annotations

import importlib.metadata
import logging
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from kserve import Model, model_server
from kserve.errors import InferenceError, ModelNotFound, ModelNotReady, ServerNotReady
from kserve.predictor_config import PredictorConfig
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.grpc import server as kserve_grpc_server
from kserve.protocol.infer_type import InferInput
from kserve.protocol.rest import server as kserve_rest_server
from kserve.utils.inference_client_factory import InferenceClientFactory

from contract import availability, http, kserve_compat
from contract.availability import set_not_ready_reason
from contract.errors import PrivacyPolicyViolation
from contract.grpc_status import StatusMappingInterceptor
from contract.service_logs import GrpcRequestLogInterceptor
from contract.v2_routes import ServedModel, serve_model

# --- the version gate ------------------------------------------------------------------------


def test_the_installed_kserve_is_a_tested_one() -> None:
    installed = importlib.metadata.version("kserve")
    assert kserve_compat.kserve_version() == installed
    assert kserve_compat.check_kserve_version() == installed


@pytest.mark.parametrize(
    ("version", "tested"),
    [
        ("0.21.0", True),
        ("0.21.3rc1", True),
        ("0.22.0", False),
        ("0.20.1", False),
        ("0.2.1", False),
        ("0.210.0", False),
        ("1.0.0", False),
        ("unknown", False),
    ],
)
def test_a_release_is_tested_by_its_major_and_minor(version: str, tested: bool) -> None:
    assert kserve_compat.is_tested(version) is tested


@pytest.fixture
def untested_kserve(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(kserve_compat, "kserve_version", lambda: "0.99.1")
    monkeypatch.setattr(kserve_compat, "_warned_about", set())
    monkeypatch.delenv(kserve_compat.ALLOW_UNTESTED_ENV, raising=False)
    return "0.99.1"


def test_an_untested_kserve_fails_start_up_naming_both_versions_and_the_escape_hatch(
    untested_kserve: str,
) -> None:
    with pytest.raises(kserve_compat.UntestedKServeVersion) as raised:
        kserve_compat.check_kserve_version()
    message = str(raised.value)
    assert f"KServe {untested_kserve} is installed" in message
    assert "tested with KServe 0.21 only" in message
    assert "AUDIOGUARD_ALLOW_UNTESTED_KSERVE=1" in message
    assert isinstance(raised.value, RuntimeError)


def test_every_patching_entry_point_checks_the_version_before_patching(untested_kserve: str) -> None:
    app = FastAPI()
    handler_before = kserve_rest_server.inference_error_handler
    limit_before = model_server.args.grpc_max_receive_message_length
    init_before = kserve_rest_server.RESTServer.__init__
    with pytest.raises(kserve_compat.UntestedKServeVersion):
        kserve_compat.install_service_patches(app)
    with pytest.raises(kserve_compat.UntestedKServeVersion):
        kserve_compat.listen_on("127.0.0.1")
    with pytest.raises(kserve_compat.UntestedKServeVersion):
        kserve_compat.set_grpc_max_receive_message_length(limit_before + 1)
    assert app.user_middleware == []
    assert not getattr(app.state, "audioguard_http_fixes", False)
    assert kserve_rest_server.inference_error_handler is handler_before
    assert model_server.args.grpc_max_receive_message_length == limit_before
    assert kserve_rest_server.RESTServer.__init__ is init_before


def test_the_override_downgrades_an_untested_kserve_to_a_warning(
    untested_kserve: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(kserve_compat.ALLOW_UNTESTED_ENV, "1")
    with caplog.at_level(logging.WARNING, logger="contract.kserve_compat"):
        assert kserve_compat.check_kserve_version() == untested_kserve
        kserve_compat.install_service_patches(FastAPI())
    assert [r.levelno for r in caplog.records] == [logging.WARNING]  # once, not per patch
    assert f"KServe {untested_kserve} is installed" in caplog.text
    assert "Starting anyway: AUDIOGUARD_ALLOW_UNTESTED_KSERVE=1" in caplog.text


def test_only_the_value_1_is_the_override(untested_kserve: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(kserve_compat.ALLOW_UNTESTED_ENV, "yes")
    with pytest.raises(kserve_compat.UntestedKServeVersion):
        kserve_compat.check_kserve_version()


# --- what the patches replace still exists in KServe ---------------------------------------


def test_kserve_still_has_every_name_the_patches_replace() -> None:
    assert callable(kserve_rest_server.inference_error_handler)
    assert callable(kserve_rest_server.model_not_found_handler)
    assert callable(kserve_rest_server.model_not_ready_handler)
    assert callable(kserve_rest_server.server_not_ready_handler)
    assert callable(DataPlane.ready) and callable(DataPlane.model_ready)
    assert hasattr(kserve_grpc_server, "ExceptionToStatusInterceptor")
    assert hasattr(kserve_grpc_server, "LoggingInterceptor")
    assert hasattr(kserve_grpc_server, "aio")
    assert hasattr(model_server.args, "grpc_max_receive_message_length")
    assert isinstance(Model.__dict__["_grpc_client"], property)
    assert Model("m")._grpc_client_stub is None
    assert InferInput("x", [1], "BYTES")._raw_data is None


# --- the patches take hold ------------------------------------------------------------------


def test_installing_the_patches_makes_kserves_grpc_server_use_our_interceptors() -> None:
    kserve_compat.install_service_patches(FastAPI())
    assert kserve_grpc_server.ExceptionToStatusInterceptor is StatusMappingInterceptor
    assert kserve_grpc_server.LoggingInterceptor is GrpcRequestLogInterceptor
    assert kserve_rest_server.inference_error_handler is http.inference_error_handler
    assert kserve_rest_server.model_not_found_handler is availability.model_not_found_handler
    assert kserve_rest_server.server_not_ready_handler is availability.server_not_ready_handler


def _app_as_kserve_starts_it() -> FastAPI:
    """An app with our patches, then KServe's own exception handlers as its REST server adds them
    when it starts (after ours)."""
    app = FastAPI()
    kserve_compat.install_service_patches(app)

    @app.post("/kserve-error")
    async def kserve_error() -> None:
        raise InferenceError("Failed to encode \"b'RIFF\\x00\\x01secret audio'\" using UTF-8")

    @app.get("/v2/models/{model_name}/ready")
    async def model_ready(model_name: str) -> None:
        if model_name != "audioguard":
            raise ModelNotFound(model_name)
        raise ModelNotReady(model_name)

    @app.get("/v2/health/ready")
    async def server_ready() -> None:
        raise ServerNotReady()

    @app.get("/registry/{model_name}/ready")
    async def registry_ready(model_name: str) -> None:
        raise ModelNotFound(model_name)  # KServe's registry before the model is registered with it

    @app.post("/policy")
    async def policy() -> None:
        raise http.to_kserve_error(PrivacyPolicyViolation("privacy method 'none' is below the minimum"))

    kserve_rest_server.RESTServer._add_exception_handlers(None, app)  # type: ignore[arg-type]
    return app


def test_kserves_own_inference_error_handler_answers_without_echoing_the_payload() -> None:
    """KServe registers its InferenceError handler at start, after ours: the patch makes it ours."""
    with TestClient(_app_as_kserve_starts_it(), raise_server_exceptions=False) as client:
        answer = client.post("/kserve-error")
    assert answer.status_code == 500
    assert answer.json() == {"error": "internal server error (InferenceError)"}
    assert "RIFF" not in answer.text


def test_kserves_not_found_and_not_ready_answer_why_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A wrong model name, a probe while not ready: KServe logged an ERROR traceback for each."""
    app = _app_as_kserve_starts_it()
    serve_model(app, ServedModel(Model("audioguard"), dict, 1024, lambda: PrivacyPolicyViolation("x"), ()))
    set_not_ready_reason(app, lambda: "the predictor at p:1 does not serve model 'audioguard'")
    availability._not_served.forget("other")  # once a minute per name: this test's minute
    with caplog.at_level(logging.DEBUG), TestClient(app, raise_server_exceptions=False) as client:
        missing = [client.get("/v2/models/other/ready") for _ in range(5)]
        not_ready = client.get("/v2/models/audioguard/ready")
        server = client.get("/v2/health/ready")
    assert {answer.status_code for answer in missing} == {404}
    assert missing[0].json() == {"error": "model 'other' is not served here; this server serves 'audioguard'"}
    assert not_ready.status_code == 503
    assert not_ready.json() == {
        "error": "model 'audioguard' is not ready: the predictor at p:1 does not serve model 'audioguard'"
    }
    assert (server.status_code, server.json()) == (
        503,
        {"error": "the predictor at p:1 does not serve model 'audioguard'"},
    )
    assert not any(record.exc_info for record in caplog.records)
    assert not any(record.levelno >= logging.ERROR for record in caplog.records)
    # the wrong name: one WARNING, not one per request; the probes at DEBUG
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "GET /v2/models/other/ready: model 'other' is not served here; this server serves 'audioguard'"
        " (a caller uses another model name)"
    ]


def test_a_served_name_kserve_has_not_registered_yet_is_not_ready_not_a_wrong_name(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A predictor pod starting up answered its own model name with "not served here; this server
    serves 'audioguard'" (a real cluster, the transformer then took it for a wrong name): while
    KServe has not registered a name this server serves, the answer is 503 "still starting"."""
    app = _app_as_kserve_starts_it()
    serve_model(app, ServedModel(Model("audioguard"), dict, 1024, lambda: PrivacyPolicyViolation("x"), ()))
    availability._not_served.forget("other")
    with caplog.at_level(logging.DEBUG), TestClient(app, raise_server_exceptions=False) as client:
        starting = client.get("/registry/audioguard/ready")
        other = client.get("/registry/other/ready")
    assert starting.status_code == 503
    assert starting.json() == {"error": "model 'audioguard' is not ready: the server is still starting"}
    assert other.status_code == 404 and "this server serves 'audioguard'" in other.json()["error"]
    assert not any(record.levelno >= logging.ERROR for record in caplog.records)


def test_a_typed_error_keeps_its_status_and_json_body_through_kserves_handlers() -> None:
    with TestClient(_app_as_kserve_starts_it(), raise_server_exceptions=False) as client:
        answer = client.post("/policy")
    assert answer.status_code == 403
    assert answer.json() == {"error": "privacy method 'none' is below the minimum"}


def test_listen_on_binds_kserves_servers_to_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kserve_rest_server.RESTServer, "__init__", kserve_rest_server.RESTServer.__init__)
    monkeypatch.setattr(kserve_grpc_server, "aio", kserve_grpc_server.aio)
    kserve_compat.listen_on("127.0.0.1")
    server = kserve_rest_server.RESTServer("kserve.model_server:app", None, None, 0)  # type: ignore[arg-type]
    assert server.config.host == "127.0.0.1"
    assert isinstance(kserve_grpc_server.aio, kserve_compat._GrpcModule)


def test_listen_on_every_interface_leaves_kserve_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kserve_grpc_server, "aio", kserve_grpc_server.aio)
    init = kserve_rest_server.RESTServer.__init__
    kserve_compat.listen_on("0.0.0.0")
    assert kserve_rest_server.RESTServer.__init__ is init


def test_the_grpc_receive_limit_reaches_the_flags_kserve_hands_its_grpc_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        model_server.args,
        "grpc_max_receive_message_length",
        model_server.args.grpc_max_receive_message_length,
    )
    kserve_compat.set_grpc_max_receive_message_length(123_456_789)
    assert vars(model_server.args)["grpc_max_receive_message_length"] == 123_456_789


def test_raw_data_is_what_kserve_decodes_a_tensor_from() -> None:
    tensor = InferInput("x", [3], "UINT8")
    kserve_compat.set_raw_data(tensor, b"\x01\x02\xff")
    assert kserve_compat.raw_data(tensor) == b"\x01\x02\xff"
    np.testing.assert_array_equal(tensor.as_numpy(), np.array([1, 2, 255], np.uint8))


# --- the transformer's predictor client -----------------------------------------------------

CHANNEL_ARGS = (("grpc.max_reconnect_backoff_ms", 1000),)


def predictor_config(protocol: str, host: str = "predictor:8081") -> PredictorConfig:
    return PredictorConfig(predictor_host=host, predictor_protocol=protocol)


@pytest.mark.parametrize(
    "config", [None, predictor_config("v2"), predictor_config("grpc-v2", host="")], ids=str
)
def test_no_grpc_client_unless_the_predictor_speaks_grpc(config: PredictorConfig | None) -> None:
    assert kserve_compat.predictor_grpc_client(config, CHANNEL_ARGS) is None


def test_the_predictor_client_is_kserves_with_our_channel_options_made_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[dict[str, Any]] = []

    def get_grpc_client(self: object, url: str, **kwargs: Any) -> object:
        made.append({"url": url, **kwargs})
        return SimpleNamespace(url=url)

    monkeypatch.setattr(InferenceClientFactory, "get_grpc_client", get_grpc_client)
    model = SimpleNamespace(predictor_config=predictor_config("grpc-v2"), _grpc_client_stub=None)
    client = kserve_compat.predictor_grpc_client_of(model, CHANNEL_ARGS)  # type: ignore[arg-type]
    assert kserve_compat.predictor_grpc_client_of(model, CHANNEL_ARGS) is client  # type: ignore[arg-type]
    assert model._grpc_client_stub is client
    assert len(made) == 1
    assert made[0]["url"] == "predictor:8081"
    assert made[0]["channel_args"] == list(CHANNEL_ARGS)
