"""``unusual_sound``: a window far outside what a source normally sounds like, in VGGish's space.

Open set: no label says what the sound is, only that this place has not sounded like it. Per
source, a Gaussian model of its own embeddings (the 128 PCA'd VGGish numbers of each 0.96-s
example the source's windows were scored with), learned over ``learning_seconds`` of scored
audio and then frozen:

1. **learning** (first half): the running mean and covariance of the examples (Welford; each
   example once), nothing else;
2. **calibrating** (second half): each new example's distance to that model (Mahalanobis, on the
   covariance shrunk towards its mean variance, so 128 dimensions need no more data than this)
   into a fixed histogram; at the end ``margin`` times the ``quantile`` of those distances is the
   threshold;
3. **active**: a scored window whose farthest example is beyond the threshold is a hit (score:
   that distance, ``measures``: ``novelty`` and ``threshold``), with the window's top labels as
   ``triggered_by`` for context, and the one event lifecycle makes events of the hits.

Only statistics are kept (a mean, a covariance, counts and a histogram of distances: about
135 KB per source), never an embedding or audio. ``NoveltyStore`` keeps them across restarts;
``reset`` starts learning again. With synthetic weights the embeddings are random projections:
the model still separates sounds that differ in spectrum, but no figure of it means anything for
the official weights.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

import numpy as np

from contract.constants import EXAMPLE_SECONDS
from contract.errors import InvalidConfiguration
from transformer.analysis.anomalies import Anomaly, TriggeringClass, WindowSpan
from transformer.analysis.detectors.ranges import out_of_range, raise_problems
from transformer.analysis.labels import Labels

GROUP: Final = "unusual_sound"
LABEL: Final = "Unusual sound for this place"
DIMENSIONS: Final = 128
#: the calibration histogram: distances 0-HISTOGRAM_MAX in HISTOGRAM_BINS bins (the last: beyond)
HISTOGRAM_BINS: Final = 4000
HISTOGRAM_MAX: Final = 100.0
State = Literal["learning", "calibrating", "active"]


@dataclass(frozen=True)
class NoveltySettings:
    """How long a source learns and how rare an active hit must be.

    Attributes:
        learning_seconds: scored audio (seconds of examples) learnt from, half to model, half to
            calibrate (60 s to 30 days).
        quantile: the calibrated threshold: this quantile of the calibration distances (0.9-0.99999).
        shrinkage: how far the covariance is pulled towards its mean variance (0-1).
        margin: the threshold is this times the calibrated quantile (1-3): a quantile's tail is
            measured on few examples, and a distance one sample beyond it is no unusual sound.
        top_labels: the window's labels an event names for context (1-10).
    """

    learning_seconds: float = 86_400.0
    quantile: float = 0.9999
    shrinkage: float = 0.1
    margin: float = 1.2
    top_labels: int = 3

    def __post_init__(self) -> None:
        raise_problems(
            out_of_range("learning_seconds", self.learning_seconds, 60.0, 30 * 86_400),
            out_of_range("quantile", self.quantile, 0.9, 0.99999),
            out_of_range("shrinkage", self.shrinkage, 0.0, 1.0),
            out_of_range("margin", self.margin, 1.0, 3.0),
            out_of_range("top_labels", self.top_labels, 1, 10),
        )


@dataclass
class NoveltyModel:
    """One source's model of its normal sounds (see the module)."""

    settings: NoveltySettings
    labels: Labels
    count: int = 0  # examples modelled
    mean: np.ndarray = field(default_factory=lambda: np.zeros(DIMENSIONS))
    scatter: np.ndarray = field(default_factory=lambda: np.zeros((DIMENSIONS, DIMENSIONS)))
    histogram: np.ndarray = field(default_factory=lambda: np.zeros(HISTOGRAM_BINS + 1, dtype=np.int64))
    threshold: float | None = None
    _precision: np.ndarray | None = None
    _last_example: float = -math.inf  # stream time of the newest example taken in this run
    _judged: dict[float, float] = field(default_factory=dict)  # distance of each example in the window

    @property
    def learning_examples(self) -> int:
        return math.ceil(self.settings.learning_seconds / EXAMPLE_SECONDS)

    @property
    def state(self) -> State:
        if self.threshold is not None:
            return "active"
        return "learning" if self.count < self.learning_examples // 2 else "calibrating"

    def status(self) -> dict[str, object]:
        """What the status endpoint shows: the state, how much is learnt, the threshold."""
        calibrated = int(self.histogram.sum())
        left = max(0, self.learning_examples - self.count - calibrated) * EXAMPLE_SECONDS
        return {
            "state": self.state,
            "seconds_learnt": round((self.count + calibrated) * EXAMPLE_SECONDS),
            "seconds_to_learn": round(left),
            "threshold": None if self.threshold is None else round(self.threshold, 3),
        }

    def reset(self) -> None:
        """Forget everything: learn again from the next scored window."""
        fresh = NoveltyModel(self.settings, self.labels)
        self.count, self.mean, self.scatter = fresh.count, fresh.mean, fresh.scatter
        self.histogram, self.threshold, self._precision = fresh.histogram, None, None
        self._judged = {}

    def window(
        self, span: WindowSpan, embeddings: np.ndarray, scores: np.ndarray, index: int = 0
    ) -> list[Anomaly]:
        """Take in the window's new examples (learning, calibrating); once active, its hit if its
        farthest example is beyond the threshold. ``embeddings``: (10, 128) uint8 of its examples
        (``span.example_starts`` their times); ``scores``: its classifier scores."""
        values = np.asarray(embeddings, dtype=np.float64)
        starts = (
            span.start_seconds + EXAMPLE_SECONDS * np.arange(len(values))
            if span.example_starts is None
            else np.asarray(span.example_starts, dtype=np.float64)
        )
        new = starts[: len(values)] > self._last_example + 1e-6
        if new.any():
            self._last_example = float(starts[: len(values)][new].max())
            self._take(values[new])
        if self.threshold is None:
            return []
        distances = self._window_distances(values, starts[: len(values)])
        farthest = int(np.argmax(distances))
        if distances[farthest] <= self.threshold:
            return []
        top = np.argsort(-scores, kind="stable")[: self.settings.top_labels]
        onset = float(starts[farthest])
        return [
            Anomaly(
                group=GROUP,
                label=LABEL,
                score=float(distances[farthest]),
                threshold=self.threshold,
                start_seconds=span.start_seconds,
                end_seconds=span.end_seconds,
                window_index=index,
                triggered_by=tuple(
                    TriggeringClass(int(i), self.labels[int(i)].display_name, float(scores[i])) for i in top
                ),
                onset_seconds=onset,
                offset_seconds=min(span.end_seconds, onset + EXAMPLE_SECONDS),
                located=True,
                measures={
                    "novelty": round(float(distances[farthest]), 3),
                    "threshold": round(self.threshold, 3),
                },
            )
        ]

    def _window_distances(self, values: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """The distance of each of the window's examples, each computed once (at hop 1 a window
        shares nine examples with the one before)."""
        keys = [round(float(start), 3) for start in starts]
        missing = [index for index, key in enumerate(keys) if key not in self._judged]
        if missing:
            for index, distance in zip(missing, self.distances(values[missing]), strict=True):
                self._judged[keys[index]] = float(distance)
        self._judged = {key: self._judged[key] for key in keys}  # only the window's: bounded
        return np.array([self._judged[key] for key in keys])

    def _take(self, examples: np.ndarray) -> None:
        for example in examples:
            if self.state == "learning":
                self.count += 1
                delta = example - self.mean
                self.mean += delta / self.count
                self.scatter += np.outer(delta, example - self.mean)
            elif self.state == "calibrating":
                bin_ = min(
                    HISTOGRAM_BINS, int(self.distances(example[None, :])[0] / HISTOGRAM_MAX * HISTOGRAM_BINS)
                )
                self.histogram[bin_] += 1
                if self.histogram.sum() >= self.learning_examples - self.count:
                    self.threshold = self._calibrated()

    def _calibrated(self) -> float:
        cumulative = np.cumsum(self.histogram) / self.histogram.sum()
        bin_ = int(np.searchsorted(cumulative, self.settings.quantile))
        return self.settings.margin * (bin_ + 1) * HISTOGRAM_MAX / HISTOGRAM_BINS

    def distances(self, examples: np.ndarray) -> np.ndarray:
        """(k,) Mahalanobis distances of (k, 128) embeddings to the learnt model."""
        if self._precision is None:
            covariance = self.scatter / max(1, self.count - 1)
            shrink = self.settings.shrinkage
            target = np.trace(covariance) / DIMENSIONS
            regular = (1 - shrink) * covariance + shrink * target * np.eye(DIMENSIONS)
            self._precision = np.linalg.pinv(regular + 1e-6 * np.eye(DIMENSIONS))
        centred = np.asarray(examples, dtype=np.float64) - self.mean
        return np.sqrt(np.maximum(0.0, np.sum((centred @ self._precision) * centred, axis=1)))


class NoveltyStore:
    """Each source's model in ``<folder>/<source>.novelty.npz`` (statistics only), saved atomically."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def _path(self, source: str) -> Path:
        return self.folder / f"{source}.novelty.npz"

    def restore(self, source: str, model: NoveltyModel) -> bool:
        """Fill ``model`` with ``source``'s stored statistics; False when none are stored;
        InvalidConfiguration names a damaged file."""
        path = self._path(source)
        if not path.exists():
            return False
        try:
            with np.load(path, allow_pickle=False) as stored:
                mean, scatter, histogram = stored["mean"], stored["scatter"], stored["histogram"]
                count, threshold = int(stored["count"]), float(stored["threshold"])
        except (OSError, KeyError, ValueError) as error:
            raise InvalidConfiguration(f"the novelty model {path} cannot be read: {error}") from None
        if (
            mean.shape != (DIMENSIONS,)
            or scatter.shape != (DIMENSIONS, DIMENSIONS)
            or histogram.shape != (HISTOGRAM_BINS + 1,)
        ):
            raise InvalidConfiguration(f"the novelty model {path} is not this version's shape")
        model.count, model.mean, model.scatter, model.histogram = count, mean, scatter, histogram
        model.threshold = None if math.isnan(threshold) else threshold
        model._precision = None
        return True

    def save(self, source: str, model: NoveltyModel) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.folder, prefix=".novelty-", suffix=".npz")
        try:
            with os.fdopen(handle, "wb") as file:
                np.savez(
                    file,
                    count=np.int64(model.count),
                    mean=model.mean,
                    scatter=model.scatter,
                    histogram=model.histogram,
                    threshold=np.float64(math.nan if model.threshold is None else model.threshold),
                )
            os.replace(temporary, self._path(source))
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def forget(self, source: str) -> None:
        self._path(source).unlink(missing_ok=True)
