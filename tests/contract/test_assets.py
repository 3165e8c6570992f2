"""Official-asset download and verification, against a real HTTP server on loopback.

The official hosts are unreachable here, so the test serves files it made
itself and passes their sums in place of the official ones; the download,
streaming sha512, tarball extraction and atomic install are the real code.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import tarfile
from pathlib import Path

import pytest

from contract import asset_download, assets
from contract.errors import ChecksumMismatch, MissingModelAsset, ModelAssetError
from tests.support.serverutil import free_port


def _sha512(data: bytes) -> str:
    return hashlib.sha512(data).hexdigest()


def _tarball(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


CKPT = b"checkpoint bytes " * 1000
PCA = b"pca bytes " * 100
H5 = b"classifier bytes " * 500


def _registry(
    base: str, ckpt: bytes = CKPT, pca: bytes = PCA, h5: bytes = H5
) -> dict[str, assets.OfficialAsset]:
    return {
        assets.VGGISH_CHECKPOINT: assets.OfficialAsset(
            assets.VGGISH_CHECKPOINT, _sha512(ckpt), f"{base}/ckpt"
        ),
        assets.PCA_PARAMS: assets.OfficialAsset(assets.PCA_PARAMS, _sha512(pca), f"{base}/pca"),
        assets.CLASSIFIER_H5: assets.OfficialAsset(assets.CLASSIFIER_H5, _sha512(h5), None),
    }


def test_official_registry_matches_model_md() -> None:
    # the three names and sums published in docs/reference/model.md §6 (prefixes suffice to catch a swap)
    sums = {name: asset.sha512 for name, asset in assets.OFFICIAL_ASSETS.items()}
    assert sums[assets.VGGISH_CHECKPOINT].startswith("4e320f1b148f7ae8")
    assert sums[assets.PCA_PARAMS].startswith("3728bcbc45cb05b4")
    assert sums[assets.CLASSIFIER_H5].startswith("04d97505350d133a")
    assert all(len(value) == 128 for value in sums.values())
    assert assets.OFFICIAL_ASSETS[assets.CLASSIFIER_H5].url is None  # only in the MAX tarball


def test_download_lays_out_verified_files(file_server, tmp_path: Path) -> None:
    base, root, requested = file_server
    (root / "ckpt").write_bytes(CKPT)
    (root / "pca").write_bytes(PCA)
    # the MAX tarball nests its files in assets/ and holds a hostile member
    (root / "assets.tar.gz").write_bytes(
        _tarball({"assets/classifier_model.h5": H5, "../../evil.txt": b"x", "assets/other": b"y"})
    )
    dest = tmp_path / "models"
    seen: list[int] = []
    written = asset_download.download_assets(
        dest,
        assets=_registry(base),
        tarball_url=f"{base}/assets.tar.gz",
        progress=lambda url, done, total: seen.append(done),
    )
    assert {p.name for p in dest.iterdir()} == {
        assets.VGGISH_CHECKPOINT,
        assets.PCA_PARAMS,
        assets.CLASSIFIER_H5,
    }
    assert (dest / assets.CLASSIFIER_H5).read_bytes() == H5
    assert written[assets.VGGISH_CHECKPOINT].read_bytes() == CKPT
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path.parent / "evil.txt").exists()
    assert seen and max(seen) >= len(CKPT)

    # a second run finds verified files and downloads nothing
    requested.clear()
    asset_download.download_assets(dest, assets=_registry(base), tarball_url=f"{base}/assets.tar.gz")
    assert requested == []


def test_checksum_mismatch_discards_the_file(file_server, tmp_path: Path) -> None:
    base, root, _ = file_server
    (root / "ckpt").write_bytes(CKPT[:-1] + b"!")  # altered in transit
    dest = tmp_path / "models"
    with pytest.raises(ChecksumMismatch, match=assets.VGGISH_CHECKPOINT):
        asset_download.download_assets(dest, names=[assets.VGGISH_CHECKPOINT], assets=_registry(base))
    assert list(dest.iterdir()) == []  # neither the official name nor a leftover part file


def test_missing_member_in_tarball(file_server, tmp_path: Path) -> None:
    base, root, _ = file_server
    (root / "assets.tar.gz").write_bytes(_tarball({"assets/readme.txt": b"no model here"}))
    with pytest.raises(ModelAssetError, match="not found in the MAX assets archive"):
        asset_download.download_assets(
            tmp_path / "m",
            names=[assets.CLASSIFIER_H5],
            assets=_registry(base),
            tarball_url=f"{base}/assets.tar.gz",
        )


def test_http_error_is_reported(file_server, tmp_path: Path) -> None:
    base, _, _ = file_server
    with pytest.raises(ModelAssetError) as caught:
        asset_download.download_assets(tmp_path / "m", names=[assets.PCA_PARAMS], assets=_registry(base))
    message = caught.value.message
    assert f"download of {base}/pca failed (HTTP 404 " in message
    assert "audioguard weights synthetic" in message and "\n" not in message
    assert list((tmp_path / "m").iterdir()) == []


def test_unreachable_host_is_one_line_with_the_offline_hint(tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{free_port()}"  # nobody listens
    registry, tarball_url = asset_download.mirrored_assets(base + "/")
    assert registry[assets.PCA_PARAMS].url == f"{base}/{assets.PCA_PARAMS}"
    assert registry[assets.CLASSIFIER_H5].url is None and tarball_url == f"{base}/assets.tar.gz"
    assert {name: a.sha512 for name, a in registry.items()} == {
        name: a.sha512 for name, a in assets.OFFICIAL_ASSETS.items()
    }
    with pytest.raises(ModelAssetError) as caught:
        asset_download.download_assets(
            tmp_path / "m", names=[assets.CLASSIFIER_H5], assets=registry, tarball_url=tarball_url
        )
    message = caught.value.message
    assert message.startswith(f"download of {tarball_url} failed (cannot connect: Connection refused)")
    assert "WEIGHTS=synthetic bash scripts/run.sh" in message and "\n" not in message
    assert list((tmp_path / "m").iterdir()) == []


def test_asset_report_flags_non_official_files(tmp_path: Path) -> None:
    (tmp_path / assets.PCA_PARAMS).write_bytes(PCA)
    report = assets.asset_report(tmp_path)
    files = report["files"]
    assert report["official"] is False
    assert files[assets.PCA_PARAMS] == {
        "present": True,
        "size_bytes": len(PCA),
        "sha512": _sha512(PCA),
        "official": False,
    }
    assert files[assets.VGGISH_CHECKPOINT]["present"] is False


def test_the_start_up_report_shows_a_short_checksum_and_the_whole_one_at_debug(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / assets.PCA_PARAMS).write_bytes(PCA)
    report = assets.asset_report(tmp_path, [assets.PCA_PARAMS])
    with caplog.at_level(logging.INFO, logger="contract.assets"):
        assets.log_asset_report(report, "transformer")
    info = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert info == [f"transformer: {assets.PCA_PARAMS} official=False sha512={_sha512(PCA)[:12]}..."]
    assert not re.search(r"[0-9a-f]{128}", caplog.text)  # no 128-hex run at INFO
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="contract.assets"):
        assets.log_asset_report(report, "transformer")
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert debug == [f"transformer: {assets.PCA_PARAMS} sha512={_sha512(PCA)}"]


def test_require_assets_names_missing_file_and_command(tmp_path: Path) -> None:
    (tmp_path / assets.VGGISH_CHECKPOINT).write_bytes(b"x")
    with pytest.raises(MissingModelAsset) as caught:
        assets.require_assets(tmp_path, assets.ALL_ASSETS)
    message = caught.value.message
    assert assets.PCA_PARAMS in message and assets.CLASSIFIER_H5 in message
    assert assets.VGGISH_CHECKPOINT not in message.split("not found")[0]
    assert "audioguard weights download" in message and "audioguard weights synthetic" in message
    assert caught.value.status_code == 500
