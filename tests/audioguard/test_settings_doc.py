"""The settings tables of docs/configuration.md are the generated ones (docs cannot drift from the code)."""

from __future__ import annotations

from pathlib import Path

from audioguard.settings_doc import BEGIN_MARKER, END_MARKER, settings_markdown
from predictor.settings import PredictorSettings
from transformer.settings import TransformerSettings

CONFIGURATION = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def _documented_block() -> str:
    text = CONFIGURATION.read_text(encoding="utf-8")
    start = text.index(BEGIN_MARKER)
    end = text.index(END_MARKER) + len(END_MARKER)
    return text[start:end]


def test_documented_tables_are_current() -> None:
    assert _documented_block() == settings_markdown(), (
        "docs/configuration.md settings tables are stale: "
        "run `python -m audioguard.settings_doc` and paste its output"
    )


def test_every_field_has_a_row_with_its_env_name_and_description() -> None:
    block = _documented_block()
    for cls, prefix in ((TransformerSettings, "AUDIOGUARD_"), (PredictorSettings, "AUDIOGUARD_PREDICTOR_")):
        for name, field in cls.model_fields.items():
            assert field.description, f"{cls.__name__}.{name} has no description"
            row = next(line for line in block.splitlines() if line.startswith(f"| `--{name}` | `{prefix}"))
            assert f"`{prefix}{name.upper()}`" in row
            assert field.description.replace("|", "\\|") in row
