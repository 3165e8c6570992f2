"""docker-compose.yml, the SIFIS-Home gateway deployment without Kubernetes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.dockerfile import read_dockerfile
from tests.deploy.policy import TRANSFORMER_FLAGS, settings_from_env
from tests.deploy.tools import REPO, SCHEMAS, deploycheck
from tests.deploy.workloads import flag_values
from transformer.settings import TransformerSettings

SIFIS_PORT = "5000"


def interpolate(node: Any) -> Any:
    """Compose's ``${NAME:-default}`` interpolation with an empty environment."""
    if isinstance(node, dict):
        return {key: interpolate(value) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(item) for item in node]
    if isinstance(node, str):
        return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", node)
    return node


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = interpolate(yaml.safe_load((REPO / "docker-compose.yml").read_text("utf-8")))
    return document


def test_valid_against_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text("utf-8"))
    jsonschema.Draft202012Validator(schema).validate(compose)
    broken = json.loads(json.dumps(compose))
    broken["services"]["transformer"]["networkmode"] = "host"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(broken)


def test_compose_go_loads_it_as_this_test_reads_it(compose: dict[str, Any]) -> None:
    """compose-go (what `docker compose config` runs) loads the file with its defaults, and agrees
    with the interpolation above on what each service runs."""
    project = deploycheck("compose", REPO / "docker-compose.yml", env={"PATH": "/usr/bin:/bin"})
    assert project["name"] == "audioguard"
    assert set(project["services"]) == set(compose["services"])
    transformer = project["services"]["transformer"]
    assert transformer["network_mode"] == "host"
    assert transformer["command"] == compose["services"]["transformer"]["command"]
    assert transformer["environment"] == compose["services"]["transformer"]["environment"]
    ports = {
        (port["host_ip"], port["published"], port["target"])
        for port in project["services"]["predictor"]["ports"]
    }
    assert ports == {("127.0.0.1", "8081", 8081), ("127.0.0.1", "8080", 8080)}
    assert project["services"]["transformer"]["depends_on"]["predictor"]["condition"] == "service_healthy"


def test_transformer_serves_the_sifis_port_on_the_host_network(compose: dict[str, Any]) -> None:
    transformer = compose["services"]["transformer"]
    assert transformer["network_mode"] == "host"
    flags = flag_values(transformer["command"])
    assert flags["--http_port"] == SIFIS_PORT
    for flag, value in TRANSFORMER_FLAGS.items():
        assert flags[flag] == value, flag
    assert transformer["environment"]["HEALTHCHECK_URL"] == f"http://127.0.0.1:{SIFIS_PORT}/v2/health/ready"


def test_transformer_command_is_the_image_cmd_with_gateway_ports(compose: dict[str, Any]) -> None:
    cmd = read_dockerfile(REPO / "Dockerfile.transformer").final.last("CMD")
    assert cmd is not None
    image_flags = flag_values(cmd.exec_form())
    compose_flags = flag_values(compose["services"]["transformer"]["command"])
    changed = {
        flag
        for flag in image_flags.keys() | compose_flags.keys()
        if image_flags.get(flag) != compose_flags.get(flag)
    }
    assert changed == {"--http_port", "--grpc_port", "--predictor_host"}


def test_predictor_is_reachable_from_the_gateway_only(compose: dict[str, Any]) -> None:
    predictor = compose["services"]["predictor"]
    assert "network_mode" not in predictor
    published = {port.rsplit(":", 1)[-1]: port for port in predictor["ports"]}
    assert all(port.startswith("127.0.0.1:") for port in published.values()), published
    grpc_port = flag_values(compose["services"]["transformer"]["command"])["--predictor_host"]
    assert grpc_port == f"127.0.0.1:{published['8081'].split(':')[1]}"


@pytest.mark.parametrize("service", ["predictor", "transformer", "weights", "dht", "mosquitto"])
def test_services_are_hardened(compose: dict[str, Any], service: str) -> None:
    spec = compose["services"][service]
    assert spec["read_only"] is True and spec["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in spec["security_opt"]
    assert int(spec["user"].split(":")[0]) > 0
    # A read-only root needs a writable /tmp; a tmpfs keeps it in memory.
    assert any(entry.startswith("/tmp:") for entry in spec["tmpfs"])


def test_transformer_settings_are_real_and_the_outbox_is_on_a_volume(compose: dict[str, Any]) -> None:
    transformer = compose["services"]["transformer"]
    settings = settings_from_env(transformer["environment"], TransformerSettings)
    assert isinstance(settings, TransformerSettings)
    mounts = dict(volume.split(":", 1)[::-1] for volume in transformer["volumes"])
    assert mounts[str(Path(settings.outbox_path).parent)] == "outbox"
    assert mounts["/mnt/models:ro"] == "models"
    assert set(compose["volumes"]) == {"models", "outbox", "dht"}


def test_weights_service_downloads_into_the_models_volume(compose: dict[str, Any]) -> None:
    weights = compose["services"]["weights"]
    assert weights["entrypoint"] == [
        *("python", "-m", "contract.weights_cli"),
        *("download", "--dest", "/mnt/models"),
    ]
    assert "models:/mnt/models" in weights["volumes"]
    assert weights["profiles"] == ["setup"]


def test_the_mqtt_profile_runs_mosquitto_where_the_transformer_is_told(compose: dict[str, Any]) -> None:
    mosquitto = compose["services"]["mosquitto"]
    assert mosquitto["profiles"] == ["mqtt"] and mosquitto["network_mode"] == "host"
    config_file = REPO / "compose" / "mosquitto.conf"
    assert f"./compose/mosquitto.conf:{mosquitto['command'][-1]}:ro" in mosquitto["volumes"]
    assert "listener 1883 127.0.0.1" in config_file.read_text()
    # MQTT is off unless AUDIOGUARD_MQTT_URL is given (interpolated empty here: no broker)
    env = compose["services"]["transformer"]["environment"]
    assert env["AUDIOGUARD_MQTT_URL"] == "" and env["AUDIOGUARD_MQTT_TOPIC_PREFIX"] == "audioguard"
    settings = settings_from_env(env, TransformerSettings)
    assert not settings.mqtt_url and not settings.mqtt_password


def test_the_gateway_profile_sets_measured_limits_on_the_two_services(compose: dict[str, Any]) -> None:
    """compose/gateway.yml (``-f docker-compose.yml -f compose/gateway.yml``): valid compose, only
    the two services, limits above what the images measured (README, "On a small gateway"), and
    each inference pool as wide as its CPU share."""
    gateway = yaml.safe_load((REPO / "compose" / "gateway.yml").read_text("utf-8"))
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text("utf-8"))
    jsonschema.Draft202012Validator(schema).validate(gateway)
    assert set(gateway["services"]) == {"predictor", "transformer"} <= set(compose["services"])
    mib = {name: int(spec["mem_limit"].removesuffix("m")) for name, spec in gateway["services"].items()}
    # measured: predictor 220 MiB after traffic; transformer 1.24 GB peak at start
    assert 220 < mib["predictor"] <= 512 and 1240 < mib["transformer"] <= 2048
    assert gateway["services"]["predictor"]["environment"]["AUDIOGUARD_PREDICTOR_THREADS"] == "1"
    transformer = gateway["services"]["transformer"]
    assert transformer["environment"]["AUDIOGUARD_VGGISH_THREADS"] == str(transformer["cpus"])
    assert mib["predictor"] < int(compose["services"]["predictor"]["mem_limit"].removesuffix("g")) * 1024
