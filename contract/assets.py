"""The official model files: where they come from, their sha512 sums, and reports of
whether a model directory holds them (downloading: ``contract.asset_download``).

A model directory holds the files under their official names, directly inside
it (as MAX's ``assets/``); it doubles as a KServe storage location
(``/mnt/models``). Synthetic or altered files are allowed (tests, offline
demos) but are always reported as not official.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from contract.errors import MissingModelAsset

logger = logging.getLogger(__name__)

VGGISH_CHECKPOINT: Final = "vggish_model.ckpt"
PCA_PARAMS: Final = "vggish_pca_params.npz"
CLASSIFIER_H5: Final = "classifier_model.h5"

MAX_ASSETS_TARBALL: Final = (
    "https://codait-cos-max.s3.us.cloud-object-storage.appdomain.cloud/"
    "max-audio-classifier/1.0.0/assets.tar.gz"
)

#: Files each service needs.
TRANSFORMER_ASSETS: Final = (VGGISH_CHECKPOINT, PCA_PARAMS)
PREDICTOR_ASSETS: Final = (CLASSIFIER_H5,)
ALL_ASSETS: Final = (VGGISH_CHECKPOINT, PCA_PARAMS, CLASSIFIER_H5)

HOW_TO_GET_WEIGHTS: Final = (
    "run `audioguard weights download --dest DIR` for the official weights, or "
    "`audioguard weights synthetic --dest DIR` for synthetic test weights"
)
OFFLINE_HINT: Final = (
    "without internet access, use `audioguard weights synthetic --dest DIR` "
    "(or `WEIGHTS=synthetic bash scripts/run.sh`) for synthetic test weights"
)
#: Name of the MAX tarball on a mirror (see ``mirrored_assets``).
TARBALL_NAME: Final = "assets.tar.gz"


@dataclass(frozen=True)
class OfficialAsset:
    """One official file: its name, sha512 and the URLs that serve it.

    ``url`` serves the file itself (None when it only comes inside the MAX
    tarball); the MAX tarball holds all three files.
    """

    name: str
    sha512: str
    url: str | None


OFFICIAL_ASSETS: Final[Mapping[str, OfficialAsset]] = {
    VGGISH_CHECKPOINT: OfficialAsset(
        VGGISH_CHECKPOINT,
        "4e320f1b148f7ae8e08a8df17b102582e57fd8a9688ec17ce8f6077f062ce8fc"
        "aea711933c1b80192f3c2a9f7a09b40d6616e04b0f22a68d217ff1ec8ef0376f",
        "https://storage.googleapis.com/audioset/vggish_model.ckpt",
    ),
    PCA_PARAMS: OfficialAsset(
        PCA_PARAMS,
        "3728bcbc45cb05b4cff527434a069f990e110f1fc9687f74fce55dc204da6aa0"
        "f0f96cb4466a96fc056c32743c63830022c839072cc501a3f14bfb44928a701c",
        "https://storage.googleapis.com/audioset/vggish_pca_params.npz",
    ),
    CLASSIFIER_H5: OfficialAsset(
        CLASSIFIER_H5,
        "04d97505350d133a69eabbbc6908a497f9eef0505113a13590a85e9c25c462db"
        "9eebee506ce54dc11ed1761c734906a3989d431a7fda8660d7b461143d1b637f",
        None,
    ),
}

_CHUNK = 1 << 20


def sha512_of(path: Path) -> str:
    """Hex sha512 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha512()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class AssetStatus:
    """What a model directory holds under one official name."""

    name: str
    present: bool
    size_bytes: int | None
    sha512: str | None
    official: bool

    def as_dict(self) -> dict[str, object]:
        return {
            "present": self.present,
            "size_bytes": self.size_bytes,
            "sha512": self.sha512,
            "official": self.official,
        }


def asset_status(model_dir: Path, name: str) -> AssetStatus:
    """Hash one file of ``model_dir`` and compare it with the official sum."""
    path = Path(model_dir) / name
    if not path.is_file():
        return AssetStatus(name, False, None, None, False)
    digest = sha512_of(path)
    return AssetStatus(name, True, path.stat().st_size, digest, digest == OFFICIAL_ASSETS[name].sha512)


def asset_report(model_dir: Path, names: Iterable[str] = ALL_ASSETS) -> dict[str, object]:
    """Per-file presence and checksum status, plus ``official``: all files official.

    Used at start-up (logged) and in the services' model metadata so that
    synthetic or altered weights never pass silently as the real model.
    """
    statuses = [asset_status(model_dir, name) for name in names]
    return {
        "model_dir": str(model_dir),
        "official": all(status.official for status in statuses),
        "files": {status.name: status.as_dict() for status in statuses},
    }


#: Hex digits of a sha512 shown at INFO: enough to tell two files apart at a glance.
SHORT_SUM_CHARS: Final = 12


def short_sum(digest: str | None) -> str:
    """The first ``SHORT_SUM_CHARS`` hex digits of a checksum, "-" without one."""
    return "-" if not digest else f"{digest[:SHORT_SUM_CHARS]}..."


def log_asset_report(report: Mapping[str, object], service: str) -> None:
    """Log the report once at start-up (a short checksum at INFO, the whole sum at DEBUG and
    from ``audioguard weights verify``); a loud warning for non-official weights."""
    files = report["files"]
    assert isinstance(files, Mapping)
    for name, status in files.items():
        logger.info(
            "%s: %s official=%s sha512=%s", service, name, status["official"], short_sum(status["sha512"])
        )
        logger.debug("%s: %s sha512=%s", service, name, status["sha512"])
    if not report["official"]:
        logger.warning(
            "%s: weights in %s do NOT match the official sha512 sums: scores are not those of "
            "the published model (synthetic or altered files)",
            service,
            report["model_dir"],
        )


def require_assets(model_dir: Path, names: Iterable[str]) -> dict[str, Path]:
    """Paths of the named files in ``model_dir``; MissingModelAsset names what is absent."""
    model_dir = Path(model_dir)
    paths = {name: model_dir / name for name in names}
    missing = [name for name, path in paths.items() if not path.is_file()]
    if missing:
        raise MissingModelAsset(
            f"model file(s) {', '.join(missing)} not found in {model_dir}: {HOW_TO_GET_WEIGHTS}"
        )
    return paths
