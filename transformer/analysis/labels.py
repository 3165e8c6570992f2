"""The 527 AudioSet labels in classifier output order, and top-k selection.

Labels are data: ``transformer/data/class_labels_indices.csv`` (AudioSet
ontology, CC BY-SA 4.0), the same file IBM MAX ships.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np

from contract.constants import NUM_CLASSES
from contract.errors import InvalidParameter
from contract.rounding import score_value

LABELS_FILE = "class_labels_indices.csv"


@dataclass(frozen=True)
class Label:
    """One AudioSet class: output index, machine id (``/m/...``) and display name."""

    index: int
    mid: str
    display_name: str


class Labels(Sequence[Label]):
    """The label table, indexable by classifier output index."""

    def __init__(self, labels: Sequence[Label]) -> None:
        if [label.index for label in labels] != list(range(len(labels))):
            raise ValueError("label indices must be 0..n-1 in order")
        self._labels = tuple(labels)
        self._by_name = {label.display_name.casefold(): label for label in self._labels}

    def __len__(self) -> int:
        return len(self._labels)

    def __getitem__(self, index):  # type: ignore[no-untyped-def, override]
        return self._labels[index]

    def by_name(self, name: str) -> Label | None:
        """The label with this display name (case-insensitive), or None."""
        return self._by_name.get(name.strip().casefold())

    def top_k(
        self, scores: np.ndarray, k: int, *, only: Sequence[str] | None = None
    ) -> list[dict[str, object]]:
        """The ``k`` best classes of one score vector, best first.

        Args:
            scores: (527,) float scores of one window.
            k: how many classes to rank (1..527).
            only: MAX's ``filter``: keep only these display names among the top k.

        Returns:
            ``[{"label_id": mid, "label": display_name, "probability": float}, ...]``, probabilities
            written as ``contract.rounding.score_value`` says.
        """
        scores = np.asarray(scores)
        if scores.shape != (len(self),):
            raise ValueError(f"expected {len(self)} scores, got shape {scores.shape}")
        if not 1 <= k <= len(self):
            raise InvalidParameter(f"top_k must be between 1 and {len(self)}, got {k}")
        # stable sort so equal scores keep label order (deterministic output)
        order = np.argsort(-scores, kind="stable")[:k]
        wanted = None if only is None else {name.strip().casefold() for name in only}
        return [
            {
                "label_id": self._labels[i].mid,
                "label": self._labels[i].display_name,
                "probability": score_value(scores[i]),
            }
            for i in order
            if wanted is None or self._labels[i].display_name.casefold() in wanted
        ]


@cache
def load_labels() -> Labels:
    """Read the shipped label CSV (cached; 527 rows ``index,mid,display_name``)."""
    text = resources.files("transformer").joinpath("data", LABELS_FILE).read_text("utf-8")
    rows = list(csv.DictReader(text.splitlines()))
    labels = Labels([Label(int(row["index"]), row["mid"], row["display_name"]) for row in rows])
    if len(labels) != NUM_CLASSES:
        raise RuntimeError(f"{LABELS_FILE} has {len(labels)} rows, expected {NUM_CLASSES}")
    return labels


def parse_label_filter(text: str | None) -> list[str] | None:
    """Split MAX's comma-separated ``filter`` value into display names.

    Some AudioSet names contain commas ("Gunshot, gunfire"), so adjacent pieces
    are joined greedily (longest match first). Unknown names are a 400.
    """
    if text is None or not text.strip():
        return None
    labels = load_labels()
    pieces = text.split(",")
    names: list[str] = []
    unknown: list[str] = []
    start = 0
    while start < len(pieces):
        for stop in range(len(pieces), start, -1):
            candidate = ",".join(pieces[start:stop]).strip()
            if labels.by_name(candidate) is not None:
                names.append(candidate)
                start = stop
                break
        else:
            if pieces[start].strip():
                unknown.append(pieces[start].strip())
            start += 1
    if unknown:
        raise InvalidParameter(f"unknown label(s) in filter: {', '.join(unknown)}")
    return names or None
