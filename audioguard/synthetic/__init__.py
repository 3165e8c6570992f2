"""Synthetic weights in exactly the official file formats.

For tests and offline demos only: the files load through the same code as the
official ones, and every service reports them as not official (their sha512
sums differ), so they can never pass as the published model.
"""

from __future__ import annotations

import glob
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Final

from contract.assets import CLASSIFIER_H5, OFFICIAL_ASSETS, PCA_PARAMS, VGGISH_CHECKPOINT, sha512_of
from contract.errors import ModelAssetError
from contract.interrupts import cleanup_on_interrupt

#: The parts ``write_synthetic_assets`` can write, by short name.
PARTS: Final = {"vggish": VGGISH_CHECKPOINT, "pca": PCA_PARAMS, "classifier": CLASSIFIER_H5}


def check_overwrite(model_dir: Path, names: Iterable[str], *, force: bool) -> None:
    """Refuse to replace files already in ``model_dir`` (all of them when not ``force``).

    An official file (its sha512 is the published one) is never replaced, even
    with ``force``: synthetic weights must not destroy the real model.

    Raises:
        ModelAssetError: one line naming the existing files and the way out.
    """
    paths = {name: Path(model_dir) / name for name in names}
    existing = [name for name, path in paths.items() if path.exists()]
    official = [
        name
        for name in existing
        if paths[name].is_file() and sha512_of(paths[name]) == OFFICIAL_ASSETS[name].sha512
    ]
    if official:
        raise ModelAssetError(
            f"refusing to overwrite {', '.join(official)} in {model_dir}: the official weights "
            "(sha512 verified) are never replaced by synthetic ones, even with --force; "
            "write the synthetic files to another directory"
        )
    if existing and not force:
        raise ModelAssetError(
            f"refusing to overwrite existing {', '.join(existing)} in {model_dir}: "
            "pass --force to replace them with synthetic files"
        )


def write_synthetic_assets(
    model_dir: Path, *, seed: int = 0, include: Iterable[str] = tuple(PARTS), force: bool = False
) -> dict[str, Path]:
    """Write the chosen synthetic files under their official names in ``model_dir``.

    ``include`` takes the keys of ``PARTS``. Nothing is written when a target
    file exists, unless ``force`` (and never over an official file: see
    ``check_overwrite``). Writers are imported lazily: the VGGish writer needs
    TensorFlow, the classifier writer only h5py.

    Raises:
        ValueError: a name in ``include`` is not a key of ``PARTS``.
        ModelAssetError: a target file exists (see ``check_overwrite``).
    """
    parts = list(include)
    unknown = [part for part in parts if part not in PARTS]
    if unknown:
        raise ValueError(f"unknown part(s) {', '.join(map(repr, unknown))}; choose from {', '.join(PARTS)}")
    model_dir = Path(model_dir)
    check_overwrite(model_dir, [PARTS[part] for part in parts], force=force)
    model_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for part in parts:
        path = model_dir / PARTS[part]
        # Ctrl-C ends the command at once (contract.interrupts): no half-written file stays
        with cleanup_on_interrupt(_partial_file_remover(path)):
            _write_part(part, path, seed)
        written[PARTS[part]] = path
    return written


def _write_part(part: str, path: Path, seed: int) -> None:
    if part == "vggish":
        from audioguard.synthetic.vggish import write_synthetic_vggish_checkpoint

        write_synthetic_vggish_checkpoint(path, seed=seed)
    elif part == "pca":
        from audioguard.synthetic.vggish import write_synthetic_pca_params

        write_synthetic_pca_params(path, seed=seed)
    else:
        from audioguard.synthetic.classifier import write_synthetic_classifier_h5

        write_synthetic_classifier_h5(path, seed=seed)


def _partial_file_remover(path: Path) -> Callable[[], None]:
    """What removes a half-written ``path``: TensorFlow's temporary file for it (its checkpoint
    writer renames one into place), and ``path`` itself once the writer has touched it (a file
    that ``--force`` was about to replace stays while it is untouched)."""
    before = _signature(path)

    def remove() -> None:
        for temporary in path.parent.glob(f"{glob.escape(path.name)}.tempstate*"):
            temporary.unlink(missing_ok=True)
        if _signature(path) != before:
            path.unlink(missing_ok=True)

    return remove


def _signature(path: Path) -> tuple[int, int] | None:
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    return status.st_mtime_ns, status.st_size
