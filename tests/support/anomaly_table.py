"""The anomaly-group table of anomaly-classes.md, transcribed by hand, and small helpers."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

# anomaly-classes.md, transcribed by hand: group -> {index: display name}
EXPECTED_GROUPS = {
    "glass_break": {
        441: "Glass", 442: "Chink, clink", 443: "Shatter", 469: "Smash, crash", 470: "Breaking", 440: "Crack",
    },
    "scream": {
        14: "Screaming", 8: "Shout", 11: "Yell", 9: "Bellow", 13: "Children shouting",
        22: "Crying, sobbing", 25: "Wail, moan",
    },
    "baby_cry": {23: "Baby cry, infant cry"},
    "smoke_fire_alarm": {399: "Smoke detector, smoke alarm", 400: "Fire alarm", 388: "Alarm"},
    "fire": {298: "Fire", 299: "Crackle"},
    "siren": {
        396: "Siren", 397: "Civil defense siren", 322: "Emergency vehicle", 323: "Police car (siren)",
        324: "Ambulance (siren)", 325: "Fire engine, fire truck (siren)",
    },
    "gunshot_explosion": {
        427: "Gunshot, gunfire", 428: "Machine gun", 429: "Fusillade", 430: "Artillery fire",
        426: "Explosion", 436: "Boom",
    },
    "impact": {466: "Bang", 460: "Thump, thud", 358: "Slam", 484: "Clang"},
    "car_alarm": {310: "Car alarm"},
    "dog_alert": {75: "Bark", 77: "Howl", 79: "Growling"},
    "water_leak": {370: "Water tap, faucet", 448: "Drip", 451: "Gush", 445: "Splash, splatter"},
}  # fmt: skip


def write_groups_file(tmp_path: Path, document: object, name: str = "groups.json") -> Path:
    """A groups file holding ``document`` (JSON-encoded unless it is already text)."""
    path = tmp_path / name
    path.write_text(document if isinstance(document, str) else json.dumps(document), encoding="utf-8")
    return path


def window_bounds(num_windows: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and end seconds of consecutive 9.6-s windows."""
    starts = np.arange(num_windows) * 9.6
    return starts, starts + 9.6


CSV = Path(__file__).resolve().parents[2] / "transformer" / "data" / "class_labels_indices.csv"


def csv_display_names() -> dict[int, str]:
    """AudioSet index -> display name, read straight from the shipped label CSV."""
    with CSV.open(newline="", encoding="utf-8") as handle:
        return {int(row["index"]): row["display_name"] for row in csv.DictReader(handle)}


def shipped_groups() -> list[dict[str, Any]]:
    """The shipped anomaly groups, read from the JSON file as a person would."""
    text = (Path(__file__).resolve().parents[2] / "transformer" / "data" / "anomaly_groups.json").read_text(
        "utf-8"
    )
    return list(json.loads(text)["groups"])
