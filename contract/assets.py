"""The official model files: where they come from, their sha512 sums, download
and verification, and reports of whether a model directory holds them.

A model directory holds the files under their official names, directly inside
it (as MAX's ``assets/``); it doubles as a KServe storage location
(``/mnt/models``). Synthetic or altered files are allowed (tests, offline
demos) but are always reported as not official.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import requests

from contract.errors import ChecksumMismatch, MissingModelAsset, ModelAssetError
from contract.exception_chain import linked_exceptions, os_error_reason

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
    return AssetStatus(
        name, True, path.stat().st_size, digest, digest == OFFICIAL_ASSETS[name].sha512
    )


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


def log_asset_report(report: Mapping[str, object], service: str) -> None:
    """Log the report once at start-up; a loud warning for non-official weights."""
    files = report["files"]
    assert isinstance(files, Mapping)
    for name, status in files.items():
        logger.info("%s: %s official=%s sha512=%s", service, name, status["official"], status["sha512"])
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


# --- download ------------------------------------------------------------------------

ProgressCallback = Callable[[str, int, int | None], None]


def mirrored_assets(base_url: str) -> tuple[dict[str, OfficialAsset], str]:
    """The official files as a mirror serves them: ``base_url/<official name>``.

    Returns the registry (official sums, mirror URLs) and the tarball URL
    (``base_url/assets.tar.gz``, which holds the classifier). The sha512
    check is unchanged, so a mirror cannot pass off other files.
    """
    base = base_url.rstrip("/")
    registry = {
        name: OfficialAsset(name, asset.sha512, None if asset.url is None else f"{base}/{name}")
        for name, asset in OFFICIAL_ASSETS.items()
    }
    return registry, f"{base}/{TARBALL_NAME}"


def _download(
    url: str, dest: Path, *, timeout: float, progress: ProgressCallback | None
) -> str:
    """Stream ``url`` into ``dest``; return the sha512 of what was written.

    Raises:
        ModelAssetError: the host is unreachable, too slow, or answers an HTTP
            error; one line naming the URL, the reason and the offline way out.
    """
    digest = hashlib.sha512()
    try:
        with requests.get(url, stream=True, timeout=timeout) as response:
            response.raise_for_status()
            total = int(response.headers.get("Content-Length", 0)) or None
            done = 0
            with dest.open("wb") as handle:
                for chunk in response.iter_content(_CHUNK):
                    handle.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if progress:
                        progress(url, done, total)
    except requests.RequestException as error:
        raise ModelAssetError(
            f"download of {url} failed ({_request_failure(error, timeout)}); {OFFLINE_HINT}"
        ) from error
    return digest.hexdigest()


def _request_failure(error: requests.RequestException, timeout: float) -> str:
    """A short reason for a failed request (requests' own text spans several lines)."""
    if isinstance(error, requests.HTTPError) and error.response is not None:
        return f"HTTP {error.response.status_code} {error.response.reason}"
    if isinstance(error, requests.Timeout):
        return f"no answer within {timeout:g} s"
    if isinstance(error, requests.ConnectionError):
        return f"cannot connect: {os_error_reason(linked_exceptions(error)) or type(error).__name__}"
    return type(error).__name__


def _install_verified(tmp_file: Path, name: str, digest: str, expected: str, dest_dir: Path) -> Path:
    if digest != expected:
        tmp_file.unlink(missing_ok=True)
        raise ChecksumMismatch(
            f"{name}: sha512 {digest[:16]}... does not match the official {expected[:16]}...; "
            "the file was discarded"
        )
    target = dest_dir / name
    os.replace(tmp_file, target)  # atomic: a partial download never has the official name
    return target


def _extract_member(tarball: Path, name: str, work_dir: Path) -> tuple[Path, str]:
    """Copy the regular file whose base name is ``name`` out of the tarball.

    Only regular members are read and only their base name is used, so a
    hostile archive cannot write outside ``work_dir``.
    """
    with tarfile.open(tarball, "r:*") as archive:
        for member in archive:
            if member.isfile() and Path(member.name).name == name:
                source = archive.extractfile(member)
                if source is None:
                    break
                out = work_dir / f"{name}.part"
                digest = hashlib.sha512()
                with source, out.open("wb") as handle:
                    while chunk := source.read(_CHUNK):
                        handle.write(chunk)
                        digest.update(chunk)
                return out, digest.hexdigest()
    raise ModelAssetError(f"{name} not found in the MAX assets archive")


def download_assets(
    dest_dir: Path,
    *,
    names: Iterable[str] = ALL_ASSETS,
    assets: Mapping[str, OfficialAsset] = OFFICIAL_ASSETS,
    tarball_url: str = MAX_ASSETS_TARBALL,
    timeout: float = 60.0,
    force: bool = False,
    progress: ProgressCallback | None = None,
) -> dict[str, Path]:
    """Download, verify (sha512) and lay out the official files in ``dest_dir``.

    Files already present with the right checksum are kept. Files with a
    direct URL are fetched from it; the rest (the classifier) come out of the
    MAX tarball, downloaded at most once. Nothing unverified ever gets an
    official name, and a failed run leaves no partial file behind.

    Raises:
        ModelAssetError: a host unreachable or answering an HTTP error (one
            line naming the URL), a member missing from the tarball.
        ChecksumMismatch: a file that is not the official one.
    """
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Path] = {}
    pending: list[OfficialAsset] = []
    for name in names:
        asset = assets[name]
        target = dest_dir / name
        if not force and target.is_file() and sha512_of(target) == asset.sha512:
            logger.info("%s already present and verified", name)
            result[name] = target
        else:
            pending.append(asset)

    with tempfile.TemporaryDirectory(dir=dest_dir, prefix=".download-") as tmp:
        work = Path(tmp)
        tarball: Path | None = None
        for asset in pending:
            if asset.url is not None:
                part = work / f"{asset.name}.part"
                digest = _download(asset.url, part, timeout=timeout, progress=progress)
            else:
                if tarball is None:
                    tarball = work / TARBALL_NAME
                    _download(tarball_url, tarball, timeout=timeout, progress=progress)
                part, digest = _extract_member(tarball, asset.name, work)
            result[asset.name] = _install_verified(part, asset.name, digest, asset.sha512, dest_dir)
            logger.info("%s downloaded and verified", asset.name)
    return result


def copy_assets(source_dir: Path, dest_dir: Path, names: Iterable[str] = ALL_ASSETS) -> None:
    """Copy the named files between model directories (e.g. into a storage mount)."""
    paths = require_assets(source_dir, names)
    Path(dest_dir).mkdir(parents=True, exist_ok=True)
    for name, path in paths.items():
        shutil.copy2(path, Path(dest_dir) / name)
