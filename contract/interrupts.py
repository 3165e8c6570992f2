"""Ctrl-C in the command-line programs: exit at once, quietly, with status 130.

A command with no state to save (loading a model, classifying, waiting for an
answer) has nothing to clean up on Ctrl-C, so ``exit_on_interrupt`` makes
SIGINT end the process there and then: registered clean-ups run (e.g. a
half-downloaded file is removed), the output already written is flushed, a
progress bar's line is ended on a terminal, and the process exits 130 (128 +
SIGINT, what a shell reports for a command stopped by Ctrl-C) without
Python's ``KeyboardInterrupt`` traceback.

Python runs a signal handler in the main thread, between two bytecodes: while
the main thread is inside a long C call (importing TensorFlow, converting
VGGish to ONNX, reading an h5 file), the handler waits for it, seconds at
times. ``run_interruptibly`` runs such work in a worker thread while the main
thread waits, so the handler runs as soon as the main thread gets the GIL.

Commands that do have state to save (the live monitor ending its open events,
``audioguard serve`` stopping its servers) handle the first Ctrl-C themselves
and use ``exit_now`` for the second.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Final, NoReturn, TypeVar

#: the exit status of a command stopped by Ctrl-C (128 + SIGINT)
EXIT_INTERRUPTED: Final = 128 + signal.SIGINT
#: how often the waiting main thread looks again (a signal delivered to another thread)
_WAIT_SLICE_SECONDS: Final = 0.05

T = TypeVar("T")

_cleanups: list[Callable[[], object]] = []


def exit_now(signum: int = signal.SIGINT, _frame: FrameType | None = None) -> NoReturn:
    """End the process at once with 128 + ``signum``: run the clean-ups, flush what was written,
    end a half-drawn terminal line; no traceback, no interpreter shutdown (which could wait on
    threads stuck in C code)."""
    for cleanup in reversed(list(_cleanups)):  # a worker thread may add or remove one meanwhile
        with contextlib.suppress(Exception):
            cleanup()
    # the terminal shows "^C" after the last output (a progress bar's line): the prompt goes below
    with contextlib.suppress(Exception):
        terminal = next((fd for fd in (2, 1) if os.isatty(fd)), None)
        if terminal is not None:
            _flush()
            os.write(terminal, b"\n")
    leave(128 + signum)


def leave(code: int) -> NoReturn:
    """Exit with ``code`` now that everything is said: flush the output and skip the interpreter's
    shutdown (joining worker threads in the middle of a model call, TensorFlow's teardown: seconds)."""
    _flush()
    os._exit(code)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        # the main thread may have been interrupted inside a write to the same stream
        with contextlib.suppress(Exception):
            stream.flush()


@contextlib.contextmanager
def exit_on_interrupt() -> Iterator[None]:
    """While inside: Ctrl-C (SIGINT) is ``exit_now``; the previous handler comes back after.

    Only the main thread can set a handler: elsewhere (a command run from a thread) this does
    nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, exit_now)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def install_exit_on_interrupt() -> None:
    """Ctrl-C is ``exit_now`` from here on (a server's start-up: its framework installs its own
    graceful handler once it serves)."""
    signal.signal(signal.SIGINT, exit_now)


@contextlib.contextmanager
def cleanup_on_interrupt(cleanup: Callable[[], object]) -> Iterator[None]:
    """While inside, ``exit_now`` runs ``cleanup`` first (e.g. removes a partial download)."""
    _cleanups.append(cleanup)
    try:
        yield
    finally:
        _cleanups.remove(cleanup)


def run_interruptibly(function: Callable[..., T], *args: object, **kwargs: object) -> T:
    """``function(*args, **kwargs)`` in a worker thread, the calling thread waiting for it.

    Returns its result or raises its exception. From the main thread, a Ctrl-C handler then
    runs within milliseconds even while ``function`` sits in C code; a ``KeyboardInterrupt``
    (Python's default handler) leaves the worker behind as a daemon thread.
    """
    outcome: list[T] = []
    failure: list[BaseException] = []
    done = threading.Event()

    def work() -> None:
        try:
            outcome.append(function(*args, **kwargs))
        except BaseException as error:  # handed to the caller
            failure.append(error)
        finally:
            done.set()

    worker = threading.Thread(target=work, name=f"interruptible-{getattr(function, '__name__', 'call')}")
    worker.daemon = True
    worker.start()
    # short waits: a signal the kernel gave another thread still reaches the handler at once
    while not done.wait(_WAIT_SLICE_SECONDS):
        pass
    if failure:
        raise failure[0]
    return outcome[0]
