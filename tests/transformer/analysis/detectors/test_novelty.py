"""unusual_sound: a source's Gaussian model of its own embeddings, learnt, calibrated, frozen.

The embeddings are drawn from two kinds of "sound" (uint8 vectors as the PCA gives them): the kind
the source heard while learning, and one it never heard. Windows come at hop 1 (a new example
each) through the real event lifecycle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from contract.errors import InvalidConfiguration
from transformer.analysis.anomalies import WindowSpan
from transformer.analysis.detectors.novelty import GROUP, NoveltyModel, NoveltySettings, NoveltyStore
from transformer.analysis.events import EventChange, EventTracker
from transformer.analysis.labels import load_labels

SETTINGS = NoveltySettings(learning_seconds=1920.0, quantile=0.9999)  # 2000 examples: 1000 + 1000
SCORES = np.linspace(0.0, 0.5, 527)  # the window's labels: the last three are its top


class Stream:
    """One source's examples at hop 1: each window the newest ten."""

    def __init__(self, model: NoveltyModel) -> None:
        self.model, self.tracker, self.examples = model, EventTracker("hall"), np.zeros((0, 128), np.uint8)

    def hear(self, examples: np.ndarray) -> list[EventChange]:
        changes = []
        for example in examples:
            self.examples = np.concatenate([self.examples[-9:], example[None, :]])
            end = len(self.examples) + self.tracker.hops  # any increasing time will do
            span = WindowSpan(
                end * 0.96 - 9.6,
                end * 0.96,
                None,
                None,
                end * 0.96 - 0.96 * np.arange(len(self.examples))[::-1] - 0.96,
            )
            changes += self.tracker.update(end * 0.96, self.model.window(span, self.examples, SCORES))
        return changes


def kind(rng: np.random.Generator, count: int, centre: float, spread: float) -> np.ndarray:
    """``count`` embeddings of one kind of sound: a correlated cloud around ``centre``."""
    mixing = np.random.default_rng(7).normal(0, 1, (16, 128)) / 4
    values = centre + spread * (rng.normal(0, 1, (count, 16)) @ mixing + rng.normal(0, 0.3, (count, 128)))
    return np.clip(np.round(values), 0, 255).astype(np.uint8)


def test_quiet_on_what_it_learnt_and_raised_by_an_unseen_kind_of_sound() -> None:
    rng = np.random.default_rng(1)
    model = NoveltyModel(SETTINGS, load_labels())
    stream = Stream(model)
    assert stream.hear(kind(rng, 1000, 120.0, 12.0)) == [] and model.state == "calibrating"
    assert stream.hear(kind(rng, 1000, 120.0, 12.0)) == [] and model.state == "active"
    assert model.status()["seconds_to_learn"] == 0 and model.threshold is not None
    assert stream.hear(kind(rng, 3000, 120.0, 12.0)) == []  # 48 minutes more of the learnt kind: nothing
    unseen = kind(np.random.default_rng(2), 5, 120.0, 12.0)
    unseen[:, :40] = 200  # a part of the spectrum this place never had
    changes = stream.hear(unseen) + stream.hear(kind(rng, 20, 120.0, 12.0))
    assert [(c.change, c.group) for c in changes] == [("start", GROUP), ("end", GROUP)]
    end = changes[1]
    assert end.measures["novelty"] > end.measures["threshold"] == pytest.approx(model.threshold, abs=1e-3)
    assert [c.label for c in end.triggered_by] == [load_labels()[i].display_name for i in (526, 525, 524)]


def test_the_model_survives_a_restart_and_a_reset_starts_learning_again(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    model = NoveltyModel(SETTINGS, load_labels())
    Stream(model).hear(kind(rng, 2000, 120.0, 12.0))
    store = NoveltyStore(tmp_path / "novelty")
    store.save("hall", model)
    restored = NoveltyModel(SETTINGS, load_labels())
    assert store.restore("hall", restored) and not store.restore(
        "kitchen", NoveltyModel(SETTINGS, load_labels())
    )
    assert (restored.state, restored.threshold, restored.count) == ("active", model.threshold, model.count)
    probe = kind(rng, 10, 120.0, 12.0)
    assert np.allclose(restored.distances(probe), model.distances(probe))
    with np.load(tmp_path / "novelty" / "hall.novelty.npz") as stored:  # statistics, no embedding
        assert sorted(stored.files) == ["count", "histogram", "mean", "scatter", "threshold"]
    restored.reset()
    assert restored.status() == {
        "state": "learning",
        "seconds_learnt": 0,
        "seconds_to_learn": 1920,
        "threshold": None,
    }
    (tmp_path / "novelty" / "hall.novelty.npz").write_bytes(b"not a numpy file")
    with pytest.raises(InvalidConfiguration, match=r"hall\.novelty\.npz cannot be read"):
        store.restore("hall", restored)


def test_settings_are_validated_with_each_key_named() -> None:
    with pytest.raises(ValueError) as raised:
        NoveltySettings(learning_seconds=10.0, quantile=1.0, top_labels=0)
    message = str(raised.value)
    assert (
        "learning_seconds must be between 60" in message
        and "quantile must be between 0.9 and 0.99999" in message
    )
    assert "top_labels must be between 1 and 10" in message
