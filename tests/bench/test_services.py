"""The benchmarks' service launcher starts what ``audioguard serve`` starts, on the given weights."""

from __future__ import annotations

from pathlib import Path

from bench.services import Services


def test_the_benchmark_services_read_the_model_folder_they_are_given(tmp_path: Path) -> None:
    services = Services(tmp_path / "weights")
    for command in (services.predictor.command, services.transformer.command):
        assert command[command.index("--model_dir") + 1] == str(tmp_path / "weights")
    ports = {services.args.http_port, services.args.grpc_port}
    ports |= {services.args.predictor_http_port, services.args.predictor_grpc_port}
    assert len(ports) == 4 and 5000 not in ports  # free ports, not the defaults
    assert services.infer_url == f"http://127.0.0.1:{services.args.http_port}/v2/models/audioguard/infer"
