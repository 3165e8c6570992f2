"""The README's settings tables are the generated ones (docs cannot drift from the code)."""

from __future__ import annotations

from pathlib import Path

from audioguard.settings_doc import BEGIN_MARKER, END_MARKER, settings_markdown
from predictor.settings import PredictorSettings
from transformer.settings import TransformerSettings

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_block() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(BEGIN_MARKER)
    end = text.index(END_MARKER) + len(END_MARKER)
    return text[start:end]


def test_readme_tables_are_current() -> None:
    assert _readme_block() == settings_markdown(), (
        "README settings tables are stale: run `python -m audioguard.settings_doc` and paste its output"
    )


def test_every_field_has_a_row_with_its_env_name_and_description() -> None:
    block = _readme_block()
    for cls, prefix in ((TransformerSettings, "AUDIOGUARD_"), (PredictorSettings, "AUDIOGUARD_PREDICTOR_")):
        for name, field in cls.model_fields.items():
            assert field.description, f"{cls.__name__}.{name} has no description"
            row = next(line for line in block.splitlines() if line.startswith(f"| `--{name}` | `{prefix}"))
            assert f"`{prefix}{name.upper()}`" in row
            assert field.description.replace("|", "\\|") in row
