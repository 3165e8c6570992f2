"""Request bodies read in memory and bounded (413: ``transformer.analysis.analyzer.upload_too_large``).

Audio never touches the disk, so bodies are never spooled; a body larger than
its limit is refused as soon as the limit is crossed (or from Content-Length).
"""

from __future__ import annotations

from fastapi import Request

from transformer.analysis.analyzer import upload_too_large


async def read_limited_body(request: Request, limit: int, max_upload_mb: float) -> bytes:
    """The request body; AudioTooLarge (413) as soon as it exceeds ``limit`` bytes.

    ``limit`` is the body size that an upload of ``max_upload_mb`` MiB can
    reach with its framing (multipart, base64/JSON); the 413 message names
    ``max_upload_mb``, the limit the operator set.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise upload_too_large(max_upload_mb)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise upload_too_large(max_upload_mb)
        chunks.append(chunk)
    return b"".join(chunks)
