"""The TensorFlow-free V1 checkpoint reader, against files written by TensorFlow's own writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from contract.errors import MissingModelAsset, ModelAssetError, ModelLayoutMismatch
from tests.support.synthetic_vggish_files import OFFICIAL_SHAPES, synthetic_vggish_files
from transformer.audio.tf1_checkpoint import TF1Checkpoint
from transformer.audio.vggish_layout import read_vggish_weights


def _save_slices(path: Path, tensors: list[tuple[str, str, np.ndarray]]) -> None:
    """TF's V1 writer (the SaveSlices op): (name, "shape slice" spec or "", values) per entry."""
    tf.raw_ops.SaveSlices(
        filename=str(path),
        tensor_names=[name for name, _, _ in tensors],
        shapes_and_slices=[spec for _, spec, _ in tensors],
        data=[values for _, _, values in tensors],
    )


@pytest.mark.slow
def test_every_vggish_value_equals_tensorflows_reader(tmp_path_factory: pytest.TempPathFactory) -> None:
    files = synthetic_vggish_files(tmp_path_factory)
    ours = TF1Checkpoint.read(files.checkpoint)
    reference = tf.train.load_checkpoint(str(files.checkpoint))
    shapes = reference.get_variable_to_shape_map()
    assert set(ours.variables) == set(shapes) == set(OFFICIAL_SHAPES)
    for name, shape in shapes.items():
        assert ours.variables[name].shape == tuple(shape) and ours.variables[name].dtype == "float32"
        expected = reference.get_tensor(name)
        assert ours.tensor(name).dtype == expected.dtype
        np.testing.assert_array_equal(ours.tensor(name), expected, err_msg=name)


def test_slices_dtypes_and_names(tmp_path: Path) -> None:
    matrix = np.arange(24, dtype=np.float32).reshape(4, 6) / 7
    path = tmp_path / "sliced.ckpt"
    _save_slices(
        path,
        [
            ("matrix", "4 6 0,2:-", matrix[:2]),
            ("matrix", "4 6 2,2:-", matrix[2:]),
            ("doubles", "", np.linspace(0, 1, 5)),
            ("step", "", np.array([7], dtype=np.int64)),
        ],
    )
    checkpoint = TF1Checkpoint.read(path)
    assert checkpoint.variables["matrix"].shape == (4, 6)
    assert checkpoint.variables["step"].dtype == "int64"
    np.testing.assert_array_equal(checkpoint.tensor("matrix"), matrix)  # both slices, in place
    np.testing.assert_array_equal(checkpoint.tensor("doubles"), np.linspace(0, 1, 5))
    with pytest.raises(KeyError):
        checkpoint.tensor("step")  # integers are listed, not read
    only = TF1Checkpoint.read(path, frozenset({"doubles"}))
    with pytest.raises(KeyError):
        only.tensor("matrix")


def test_a_missing_slice_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "half.ckpt"
    _save_slices(path, [("matrix", "4 6 0,2:-", np.ones((2, 6), np.float32))])
    with pytest.raises(ModelAssetError, match="matrix has 12 of 24 values"):
        TF1Checkpoint.read(path)


@pytest.mark.parametrize(
    "content", [b"", b"\0" * 4096, b"not a checkpoint at all" * 10], ids=["empty", "zeros", "text"]
)
def test_files_that_are_not_checkpoints(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "vggish_model.ckpt"
    path.write_bytes(content)
    with pytest.raises(ModelAssetError, match=r"vggish_model\.ckpt is not a readable TF1"):
        TF1Checkpoint.read(path)


def test_truncated_and_compressed_files(tmp_path: Path) -> None:
    path = tmp_path / "full.ckpt"
    _save_slices(path, [("w", "", np.ones((64, 64), np.float32))])
    data = path.read_bytes()
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelAssetError, match="not a readable TF1"):
        TF1Checkpoint.read(truncated)
    # A block trailer claiming snappy: V1 writers never compress, so it is refused, not misread.
    first_block_end = _first_block_size(data)
    flagged = bytearray(data)
    flagged[first_block_end] = 1
    compressed = tmp_path / "compressed.ckpt"
    compressed.write_bytes(bytes(flagged))
    with pytest.raises(ModelAssetError, match="compressed block"):
        TF1Checkpoint.read(compressed)


def _first_block_size(data: bytes) -> int:
    """Size of the first data block: the table's index block points at it (offset 0)."""
    footer = data[-48:]
    position = 0
    for _ in range(2):  # skip the metaindex handle (offset, size)
        while footer[position] & 0x80:
            position += 1
        position += 1
    index_offset = _uvarint(footer, position)
    # the index block's first entry: shared=0, unshared=k, value_length=v, key, handle(offset=0, size)
    cursor = index_offset
    values = []
    for _ in range(3):
        values.append(_uvarint(data, cursor))
        while data[cursor] & 0x80:
            cursor += 1
        cursor += 1
    _, unshared, _ = values
    cursor += unshared + 1  # the key, then the handle's offset 0 (one byte)
    return _uvarint(data, cursor)


def _uvarint(data: bytes, position: int) -> int:
    result, shift = 0, 0
    while True:
        byte = data[position]
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result
        position += 1
        shift += 7


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MissingModelAsset, match=r"absent\.ckpt"):
        TF1Checkpoint.read(tmp_path / "absent.ckpt")
    with pytest.raises(MissingModelAsset, match="audioguard weights download"):
        read_vggish_weights(tmp_path / "vggish_model.ckpt")


def test_layout_check_names_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "wrong.ckpt"
    _save_slices(
        path,
        [
            ("vggish/conv1/weights", "", np.zeros((3, 3, 1, 32), np.float32)),
            ("vggish/conv1/biases", "", np.zeros(64, np.float32)),
        ],
    )
    with pytest.raises(ModelLayoutMismatch) as raised:
        read_vggish_weights(path)
    message = str(raised.value)
    assert "vggish/conv1/weights has shape [3, 3, 1, 32], expected [3, 3, 1, 64]" in message
    assert "missing variable vggish/fc2/weights [4096, 128]" in message
    assert "vggish/conv1/biases" not in message
