"""Strict validation of rendered manifests with kubeconform and the offline schemas."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tests.deploy.tools import KUBERNETES_VERSION, run


@dataclass(frozen=True)
class Verdict:
    kind: str
    name: str
    status: str  # statusValid, statusInvalid, statusError, statusSkipped, statusEmpty
    message: str


@dataclass(frozen=True)
class Kubeconform:
    binary: Path
    schema_locations: tuple[str, ...]

    def validate(self, rendered: str) -> list[Verdict]:
        """Validate a multi-document YAML stream; one verdict per resource.

        -strict rejects unknown fields (the schemas say additionalProperties:
        false) and duplicate keys; a kind without a schema is an error.
        """
        command: list[str | Path] = [
            self.binary, "-strict", "-summary", "-output", "json", "-verbose",
            "-kubernetes-version", KUBERNETES_VERSION,
        ]  # fmt: skip
        for location in self.schema_locations:
            command += ["-schema-location", location]
        output = run(command, stdin=rendered, check=False)
        report = json.loads(output)
        return [
            Verdict(item.get("kind", ""), item.get("name", ""), item["status"], item.get("msg", ""))
            for item in report["resources"]
            if item["status"] != "statusEmpty"
        ]

    def assert_valid(self, rendered: str, *, expected_kinds: set[str] | None = None) -> list[Verdict]:
        verdicts = self.validate(rendered)
        problems = [v for v in verdicts if v.status != "statusValid"]
        assert not problems, "\n".join(f"{v.kind}/{v.name}: {v.status} {v.message}" for v in problems)
        assert verdicts, "nothing was validated"
        if expected_kinds is not None:
            assert {v.kind for v in verdicts} == expected_kinds
        return verdicts
