"""Read a TF1 "V1" checkpoint (one file, e.g. ``vggish_model.ckpt``) without TensorFlow.

The V1 format is a LevelDB-style table (uncompressed blocks, TensorFlow's
``tensor_slice_writer``). The entry with the empty key holds a
``SavedTensorSliceMeta`` (names, shapes, dtypes); every other entry holds one
``SavedSlice`` whose ``TensorProto`` carries the values (``float_val`` packed,
or ``tensor_content``). Only the few protobuf fields needed are decoded here,
by hand, so the serving process does not need TensorFlow to read the official
weights. ``tests/transformer/audio/test_tf1_checkpoint.py`` checks every value
against ``tf.train.load_checkpoint``.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contract.errors import MissingModelAsset, ModelAssetError

_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_BYTES = 48
_BLOCK_TRAILER_BYTES = 5  # compression type + masked crc32c
#: TensorFlow DataType enum -> (NumPy dtype, TensorProto repeated field, wire type of one element).
_DTYPES: dict[int, tuple[str, int]] = {1: ("<f4", 5), 2: ("<f8", 6)}
_DTYPE_NAMES = {1: "float32", 2: "float64", 3: "int32", 9: "int64", 7: "string", 10: "bool"}


class _Malformed(Exception):
    """Internal: the bytes do not follow the format (turned into ModelAssetError)."""


def _varint(buffer: memoryview, position: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if position >= len(buffer) or shift > 63:
            raise _Malformed("truncated varint")
        byte = buffer[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, position
        shift += 7


def _fields(buffer: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """Protobuf wire format: (field number, wire type, int value or bytes view)."""
    position = 0
    while position < len(buffer):
        tag, position = _varint(buffer, position)
        number, wire_type = tag >> 3, tag & 7
        value: int | memoryview
        if wire_type == 0:
            value, position = _varint(buffer, position)
        elif wire_type == 2:
            length, position = _varint(buffer, position)
            if position + length > len(buffer):
                raise _Malformed("truncated field")
            value = buffer[position : position + length]
            position += length
        elif wire_type == 5:
            value = int.from_bytes(buffer[position : position + 4], "little")
            position += 4
        elif wire_type == 1:
            value = int.from_bytes(buffer[position : position + 8], "little")
            position += 8
        else:
            raise _Malformed(f"unsupported wire type {wire_type}")
        yield number, wire_type, value


def _submessages(buffer: memoryview, number: int) -> list[memoryview]:
    return [v for n, w, v in _fields(buffer) if n == number and w == 2 and isinstance(v, memoryview)]


def _shape(shape_proto: memoryview) -> tuple[int, ...]:
    dims = []
    for dim in _submessages(shape_proto, 2):
        sizes = [v for n, w, v in _fields(dim) if n == 1 and w == 0]
        dims.append(int(sizes[0]) if sizes else 0)
    return tuple(dims)


def _extents(slice_proto: memoryview, shape: tuple[int, ...]) -> tuple[slice, ...]:
    """TensorSliceProto -> index; an extent without a length spans its whole dimension."""
    extents = _submessages(slice_proto, 1)
    if not extents:
        return tuple(slice(None) for _ in shape)
    index = []
    for extent, size in zip(extents, shape, strict=True):
        values = {n: v for n, w, v in _fields(extent) if w == 0}
        start = int(values.get(1, 0))
        length = values.get(2)
        index.append(slice(start, size if length is None else start + int(length)))
    return tuple(index)


def _block_entries(block: memoryview) -> Iterator[tuple[bytes, memoryview]]:
    """One table block -> (key, value) pairs (keys are prefix-compressed)."""
    if len(block) < 4:
        raise _Malformed("block too short")
    restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * restarts
    if end < 0:
        raise _Malformed("bad restart array")
    position = 0
    key = b""
    while position < end:
        shared, position = _varint(block, position)
        unshared, position = _varint(block, position)
        value_length, position = _varint(block, position)
        key = key[:shared] + bytes(block[position : position + unshared])
        position += unshared
        yield key, block[position : position + value_length]
        position += value_length


def _block(data: memoryview, handle: memoryview) -> memoryview:
    offset, position = _varint(handle, 0)
    size, _ = _varint(handle, position)
    if offset + size + _BLOCK_TRAILER_BYTES > len(data):
        raise _Malformed("block beyond the end of the file")
    if data[offset + size] != 0:
        raise _Malformed(f"compressed block (type {data[offset + size]}), which V1 checkpoints never use")
    return data[offset : offset + size]


def _table_entries(data: memoryview) -> Iterator[tuple[bytes, memoryview]]:
    if len(data) < _FOOTER_BYTES:
        raise _Malformed("shorter than a table footer")
    footer = data[len(data) - _FOOTER_BYTES :]
    if struct.unpack_from("<Q", footer, 40)[0] != _TABLE_MAGIC:
        raise _Malformed("no table magic number at the end")
    _, position = _varint(footer, 0)  # the metaindex handle (offset), unused
    _, position = _varint(footer, position)
    index = _block(data, footer[position:])
    for _, handle in _block_entries(index):
        yield from _block_entries(_block(data, handle))


@dataclass(frozen=True)
class CheckpointVariable:
    """One saved variable: its shape and TensorFlow dtype name."""

    shape: tuple[int, ...]
    dtype: str


class TF1Checkpoint:
    """``variables`` (name -> shape/dtype) and ``tensor(name)`` of a V1 checkpoint file."""

    def __init__(self, variables: dict[str, CheckpointVariable], values: dict[str, np.ndarray]) -> None:
        self.variables = variables
        self._values = values

    @classmethod
    def read(cls, path: Path, names: frozenset[str] | None = None) -> TF1Checkpoint:
        """Read ``path``; keep the values of ``names`` only (all float variables when None).

        Raises:
            MissingModelAsset: no such file.
            ModelAssetError: not a V1 checkpoint, or a variable's slices do not cover it.
        """
        path = Path(path)
        if not path.is_file():
            raise MissingModelAsset(f"checkpoint {path.name} not found in {path.parent}")
        if path.stat().st_size < _FOOTER_BYTES:
            raise ModelAssetError(f"{path.name} is not a readable TF1 (V1) checkpoint: shorter than a table")
        problem = ""
        with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            try:
                return cls._parse(memoryview(data), names)
            except (_Malformed, ValueError, struct.error, IndexError) as error:
                # Only the message leaves: the traceback's frames hold views of the mapping,
                # which must be gone before it is closed.
                problem = str(error)
        raise ModelAssetError(f"{path.name} is not a readable TF1 (V1) checkpoint: {problem}")

    @classmethod
    def _parse(cls, data: memoryview, names: frozenset[str] | None) -> TF1Checkpoint:
        variables: dict[str, CheckpointVariable] = {}
        dtypes: dict[str, int] = {}
        values: dict[str, np.ndarray] = {}
        filled: dict[str, int] = {}
        for key, value in _table_entries(data):
            if key == b"":
                for meta in _submessages(_submessages(value, 1)[0], 1):
                    cls._declare(meta, variables, dtypes)
                continue
            for saved_slice in _submessages(value, 2):
                cls._fill(saved_slice, variables, dtypes, names, values, filled)
        for name, array in values.items():
            if filled[name] != array.size:
                raise _Malformed(f"variable {name} has {filled[name]} of {array.size} values")
        return cls(variables, values)

    @staticmethod
    def _declare(meta: memoryview, variables: dict[str, CheckpointVariable], dtypes: dict[str, int]) -> None:
        fields = {n: v for n, _, v in _fields(meta) if n in (1, 2, 3)}
        if not isinstance(fields.get(1), memoryview) or not isinstance(fields.get(2), memoryview):
            raise _Malformed("tensor metadata without a name or shape")
        name = bytes(fields[1]).decode()  # type: ignore[arg-type]
        dtype = int(fields.get(3, 0))  # type: ignore[arg-type]
        shape = _shape(fields[2])  # type: ignore[arg-type]
        variables[name] = CheckpointVariable(shape, _DTYPE_NAMES.get(dtype, f"dtype {dtype}"))
        dtypes[name] = dtype

    @staticmethod
    def _fill(
        saved_slice: memoryview,
        variables: dict[str, CheckpointVariable],
        dtypes: dict[str, int],
        names: frozenset[str] | None,
        values: dict[str, np.ndarray],
        filled: dict[str, int],
    ) -> None:
        parts = {n: v for n, w, v in _fields(saved_slice) if w == 2}
        name = bytes(parts.get(1, b"")).decode()  # type: ignore[arg-type]
        if name not in variables:
            raise _Malformed(f"values for undeclared variable {name!r}")
        if dtypes[name] not in _DTYPES or (names is not None and name not in names):
            return
        numpy_dtype, repeated_field = _DTYPES[dtypes[name]]
        shape = variables[name].shape
        if name not in values:
            values[name] = np.zeros(shape, dtype=numpy_dtype)
            filled[name] = 0
        index = _extents(parts[2], shape) if 2 in parts else tuple(slice(None) for _ in shape)  # type: ignore[arg-type]
        target = values[name][index]
        chunks: list[np.ndarray] = []
        for number, wire_type, value in _fields(parts.get(3, memoryview(b""))):  # type: ignore[arg-type]
            if isinstance(value, memoryview) and number in (4, repeated_field) and wire_type == 2:
                chunks.append(np.frombuffer(value, dtype=numpy_dtype))
            elif number == repeated_field and wire_type in (1, 5):  # unpacked, one element per field
                size = 4 if wire_type == 5 else 8
                chunks.append(np.frombuffer(int(value).to_bytes(size, "little"), dtype=numpy_dtype))  # type: ignore[arg-type]
        flat = np.concatenate(chunks) if chunks else np.zeros(0, dtype=numpy_dtype)
        if flat.size != target.size:
            raise _Malformed(f"slice of {name} holds {flat.size} values for {target.size} places")
        values[name][index] = flat.reshape(target.shape)
        filled[name] += flat.size

    def tensor(self, name: str) -> np.ndarray:
        """The values of ``name`` (KeyError when absent or not read)."""
        return self._values[name]
