"""The SIFIS multipart form, parsed in memory (its fields become options in ``sifis_schema``).

Starlette's form parser spools uploads above 1 MiB to a temporary file, and
audio must never touch the disk, so the body is parsed here with
python-multipart's streaming parser over the bytes already held.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

from contract.errors import InvalidInput, InvalidParameter

AUDIO_FIELDS: Final = ("audio", "file")
MAX_FIELD_BYTES: Final = 4096
_ACCEPTED_NON_AUDIO_TYPES: Final = ("", "application/octet-stream")


@dataclass(frozen=True)
class FormPart:
    """One multipart field: text fields have no file name."""

    name: str
    filename: str | None
    content_type: str
    data: bytes


def parse_multipart(body: bytes, content_type: str | None) -> dict[str, FormPart]:
    """multipart/form-data fields by name (first occurrence wins), parsed in memory."""
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise InvalidInput(
            "expected a multipart/form-data body with the audio file in the field 'audio' (or 'file')"
        )
    parts: dict[str, FormPart] = {}
    headers: dict[bytes, bytes] = {}
    field: list[bytes] = []
    value: list[bytes] = []
    data: list[bytes] = []

    def on_header_field(chunk: bytes, start: int, end: int) -> None:
        field.append(chunk[start:end])

    def on_header_value(chunk: bytes, start: int, end: int) -> None:
        value.append(chunk[start:end])

    def on_header_end() -> None:
        headers[b"".join(field).lower()] = b"".join(value)
        field.clear()
        value.clear()

    def on_part_data(chunk: bytes, start: int, end: int) -> None:
        data.append(chunk[start:end])

    def on_part_end() -> None:
        _, disposition = parse_options_header(headers.get(b"content-disposition"))
        name = disposition.get(b"name", b"").decode("utf-8", "replace")
        filename = disposition.get(b"filename")
        part_type, _ = parse_options_header(headers.get(b"content-type"))
        if name and name not in parts:
            parts[name] = FormPart(
                name=name,
                filename=None if filename is None else filename.decode("utf-8", "replace"),
                content_type=part_type.decode("latin-1"),
                data=b"".join(data),
            )
        headers.clear()
        data.clear()

    parser = MultipartParser(
        boundary,
        {
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    try:
        parser.write(body)
        parser.finalize()
    except FormParserError:
        raise InvalidInput("the multipart/form-data body is malformed") from None
    if parser.state != MultipartState.END:
        raise InvalidInput("the multipart/form-data body is incomplete (no closing boundary)")
    return parts


# --- form fields -> options ---------------------------------------------------------------


def audio_part(parts: dict[str, FormPart]) -> FormPart:
    """The uploaded file: field ``audio`` or ``file``, of an audio (or unstated) type."""
    part = next((parts[name] for name in AUDIO_FIELDS if name in parts), None)
    if part is None:
        raise InvalidInput(
            f"no audio file in the form: send it in the field 'audio' (or 'file'); got {sorted(parts)}"
        )
    kind = part.content_type.lower()
    if not (kind.startswith("audio/") or kind in _ACCEPTED_NON_AUDIO_TYPES):
        shown = "".join(c for c in kind if c.isprintable())[:100]
        raise InvalidInput(
            f"Invalid file type/extension: {shown} (send an audio file, e.g. audio/wav or audio/flac)"
        )
    return part


def text_field(parts: dict[str, FormPart], name: str) -> str | None:
    """A text form field, or None when absent or empty."""
    part = parts.get(name)
    if part is None:
        return None
    if len(part.data) > MAX_FIELD_BYTES:
        raise InvalidParameter(f"form field {name!r} is longer than {MAX_FIELD_BYTES} bytes")
    try:
        text = part.data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise InvalidParameter(f"form field {name!r} must be UTF-8 text") from None
    return text or None
