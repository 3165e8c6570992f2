"""Synthetic weights in exactly the official file formats.

For tests and offline demos only: the files load through the same code as the
official ones, and every service reports them as not official (their sha512
sums differ), so they can never pass as the published model.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Final

from audioguard.assets import CLASSIFIER_H5, PCA_PARAMS, VGGISH_CHECKPOINT

#: The parts ``write_synthetic_assets`` can write, by short name.
PARTS: Final = {"vggish": VGGISH_CHECKPOINT, "pca": PCA_PARAMS, "classifier": CLASSIFIER_H5}


def write_synthetic_assets(
    model_dir: Path, *, seed: int = 0, include: Iterable[str] = tuple(PARTS)
) -> dict[str, Path]:
    """Write the chosen synthetic files under their official names in ``model_dir``.

    ``include`` takes the keys of ``PARTS``. Writers are imported lazily: the
    VGGish writer needs TensorFlow, the classifier writer only h5py.
    """
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for part in include:
        if part not in PARTS:
            raise ValueError(f"unknown part {part!r}; choose from {', '.join(PARTS)}")
        path = model_dir / PARTS[part]
        if part == "vggish":
            from audioguard.synthetic.vggish import write_synthetic_vggish_checkpoint

            write_synthetic_vggish_checkpoint(path, seed=seed)
        elif part == "pca":
            from audioguard.synthetic.vggish import write_synthetic_pca_params

            write_synthetic_pca_params(path, seed=seed)
        else:
            from audioguard.synthetic.classifier import write_synthetic_classifier_h5

            write_synthetic_classifier_h5(path, seed=seed)
        written[PARTS[part]] = path
    return written
