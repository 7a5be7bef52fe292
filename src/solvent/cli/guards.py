"""How a command ends: bad input as one line and exit status 2 (no traceback), SIGTERM as a clean exit 143 with no
output half-written, and SIGTERM or SIGINT as a request to stop for the commands that run until told to."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from functools import wraps
from types import FrameType
from typing import Any, TypeVar

import click

from solvent.errors import InputError, SolventError

F = TypeVar("F", bound=Callable[..., Any])
EXIT_BAD_INPUT = 2
#: Exit status after SIGTERM: 128 + the signal's number, the shells' convention.
EXIT_TERMINATED = 128 + int(signal.SIGTERM)


def fail_cleanly(command: F) -> F:
    """Turn InputError into `error: <file>: <record>.<field>: <message>` and exit status 2."""

    @wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except InputError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_BAD_INPUT)
        except SolventError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except OSError as exc:  # a file's error names the file; one with no text (a TimeoutError) its type
            what = exc.strerror or str(exc) or type(exc).__name__
            click.echo(f"error: {exc.filename}: {what}" if exc.filename else f"error: {what}", err=True)
            sys.exit(1)

    return run  # type: ignore[return-value]


class Terminated(BaseException):
    """SIGTERM, raised in the main thread: unwinding runs every `atomic_output`'s cleanup (temporary files are
    removed, no output is half-written). A BaseException, so that no `except Exception` swallows it."""


#: Set by the SIGTERM handler of `terminate_cleanly`, cleared when the command returns.
TERMINATING = threading.Event()


def stop_if_terminated() -> None:
    """Raise `Terminated` if SIGTERM arrived but its exception never reached the command: a library may clear a
    Python error raised inside a call it makes back into Python (numba's dispatcher does while it types its
    arguments). Long loops call this between batches, so the command still stops at the next one."""
    if TERMINATING.is_set():
        raise Terminated


def terminate_cleanly(command: F) -> F:
    """Turn SIGTERM into a clean exit: temporary outputs removed, one line on stderr, exit status 143.

    Further SIGTERMs are ignored while the first unwinds (a second kill must not interrupt the cleanup); the
    previous handler is restored when the command returns. Outside the main thread (no signals there) the
    command runs as it is. SIGKILL cannot be caught: docs/formats.md, "Interrupted runs", says what it leaves.
    """

    @wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        if threading.current_thread() is not threading.main_thread():
            return command(*args, **kwargs)

        def terminate(signum: int, frame: FrameType | None) -> None:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            TERMINATING.set()
            raise Terminated

        previous = signal.signal(signal.SIGTERM, terminate)
        TERMINATING.clear()
        try:
            return command(*args, **kwargs)
        except Terminated:
            click.echo("error: terminated by SIGTERM: temporary files removed", err=True)
            sys.exit(EXIT_TERMINATED)
        finally:
            signal.signal(signal.SIGTERM, previous)
            TERMINATING.clear()

    return run  # type: ignore[return-value]


@contextlib.contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGTERM or SIGINT while the block runs: a live command stops after the batch in hand (a
    normal end), instead of `terminate_cleanly`'s exit."""
    stop = threading.Event()
    handlers = {signum: signal.signal(signum, lambda *_: stop.set()) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
