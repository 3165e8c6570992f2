"""Download the official model files and install them only once their sha512 is right.

Each file is streamed to a temporary file beside the model directory, hashed
while it arrives, and renamed into place only when its sha512 is the published
one; the classifier comes out of MAX's asset tarball. A network failure is one
line naming the host and the offline way out.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import requests

from contract.assets import (
    ALL_ASSETS,
    MAX_ASSETS_TARBALL,
    OFFICIAL_ASSETS,
    OFFLINE_HINT,
    TARBALL_NAME,
    OfficialAsset,
    sha512_of,
)
from contract.errors import ChecksumMismatch, ModelAssetError
from contract.exception_chain import linked_exceptions, os_error_reason
from contract.interrupts import cleanup_on_interrupt

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20
#: ``progress(url, bytes_done, bytes_total_or_None)`` during a download
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


def _download(url: str, dest: Path, *, timeout: float, progress: ProgressCallback | None) -> str:
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

    with (
        tempfile.TemporaryDirectory(dir=dest_dir, prefix=".download-") as tmp,
        # Ctrl-C ends the command at once (contract.interrupts): no partial download left behind
        cleanup_on_interrupt(functools.partial(shutil.rmtree, tmp, ignore_errors=True)),
    ):
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
