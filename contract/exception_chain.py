"""What lies under an HTTP library's exception: requests wraps urllib3, which wraps the OS error.

The OS's own words ("Connection refused") are the useful part of a failed
request; the wrappers' text spans several lines and repeats the URL.
"""

from __future__ import annotations

from collections.abc import Sequence


def linked_exceptions(error: BaseException) -> list[BaseException]:
    """``error`` and every exception reachable from it through args, ``reason``, cause and context.

    Breadth first, each exception once (the links can form cycles).
    """
    found: list[BaseException] = []
    pending = [error]
    while pending:
        current = pending.pop(0)
        if any(current is known for known in found):
            continue
        found.append(current)
        linked = (*current.args, getattr(current, "reason", None), current.__cause__, current.__context__)
        pending.extend(item for item in linked if isinstance(item, BaseException))
    return found


def os_error_reason(exceptions: Sequence[BaseException]) -> str | None:
    """The ``strerror`` of the first OSError that has one, e.g. "Connection refused"."""
    for exception in exceptions:
        if isinstance(exception, OSError) and exception.strerror:
            return exception.strerror
    return None
