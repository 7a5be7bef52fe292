"""`solvent serve`'s venue in a process of its own, so that the HTTP process's interpreter (its GIL) serves requests
only and never waits for a batch's Python between its compiled kernels (docs/service.md, "Two processes").

The engine process (`run_engine`, started with `spawn`) builds the venue (engine, store, lock) and runs the calls
the HTTP process sends it, one at a time (service/host.py). After each batch it sends, with the call's answer, an
`Update`: the new view (service/view.py, without the full figures) and the re-margins it packed
(service/copies.py, `FigureOutbox`); the accounts' copy and the id index travel only when they changed
(service/wire.py). The HTTP process (`VenueClient`) keeps a read replica: a thread reads the engine's messages,
adds the re-margins to its own `FigureCopies`, swaps in the new view, then settles the awaited call, so a
`POST /records` answers after the replica holds its batch, as in one process.

The engine process dies with the HTTP process (Linux: a parent-death signal; elsewhere at the end of its channel,
after the call in progress), and a batch is durable (per the venue's commit policy) before it is answered."""

from __future__ import annotations

import asyncio
import ctypes
import itertools
import logging
import multiprocessing
import os
import pickle
import signal
import socket
import sys
import threading
from dataclasses import dataclass
from typing import Any, Final

from solvent._extras import requires_extra
from solvent._numba import set_threads
from solvent.errors import InputError, SolventError
from solvent.service.access import VenueAccess
from solvent.service.copies import FigureCopies, FigureOutbox, Remargin
from solvent.service.host import BATCH_THREADS, BATCHES, VenueHost
from solvent.service.view import VenueView
from solvent.service.wire import Channel

with requires_extra("service"):
    import anyio

log = logging.getLogger("solvent.service")

#: Seconds `close` waits for the engine process to commit and exit before killing it.
CLOSE_TIMEOUT_S: Final = 30.0
_PR_SET_PDEATHSIG: Final = 1


class EngineStopped(RuntimeError):
    """The engine process is gone: no call can be answered."""


@dataclass(frozen=True)
class Call:
    """`VenueHost.<operation>(*args)`, numbered `id` by the HTTP process (0: stop)."""

    id: int
    operation: str
    args: tuple[Any, ...]


@dataclass(frozen=True)
class Update:
    """What the HTTP process's replica needs after a batch: the view (its full figures left out) and the
    re-margins packed since the last update."""

    view: VenueView
    remargins: list[Remargin]


@dataclass(frozen=True)
class Failure:
    """An exception in the engine process, as the HTTP process raises it: bad input (`InputError`, the one line
    the CLI prints, exit 2) and the library's other errors by their message (their constructors do not round-trip
    through pickle), any other exception itself where it pickles, else a RuntimeError naming it."""

    kind: str  # "input", "solvent" or "other"
    message: str
    error: BaseException | None = None

    @classmethod
    def of(cls, exc: BaseException) -> Failure:
        if isinstance(exc, InputError):
            return cls("input", str(exc))
        if isinstance(exc, SolventError):
            return cls("solvent", str(exc))
        try:
            pickle.loads(pickle.dumps(exc))
        except Exception:  # whatever stops it round-tripping, it travels as its message
            return cls("other", f"{type(exc).__name__}: {exc}")
        return cls("other", str(exc), exc)

    def exception(self) -> BaseException:
        if self.kind == "input":
            return InputError("", "", self.message)
        if self.kind == "solvent":
            return SolventError(self.message)
        return self.error if self.error is not None else RuntimeError(f"in the engine process: {self.message}")


@dataclass(frozen=True)
class Reply:
    """The answer to call `id`: its `result`, or how it failed, and the update after it."""

    id: int
    result: Any
    failure: Failure | None
    update: Update | None


STOP: Final = Call(0, "close", ())


def run_engine(sock: socket.socket, options: Any, parent: int) -> None:
    """The engine process: build the venue of `options` (service/build.py, `ServeOptions`), send its first
    update, then answer calls until told to stop or the HTTP process is gone; commit and close the store."""
    from solvent.service.build import ServeOptions, build_venue

    assert isinstance(options, ServeOptions)
    _die_with(parent)
    os.nice(options.engine_niceness)
    set_threads(options.batch_threads or BATCH_THREADS)

    channel = Channel(sock)
    outbox = FigureOutbox()
    try:
        venue = build_venue(options, copies=outbox)
    except Exception as exc:  # the HTTP process reports it as `solvent serve` did in one process
        channel.send(Reply(0, None, Failure.of(exc), None))
        return
    host = VenueHost(venue)
    view = VenueView.of(venue)
    try:
        channel.send(Reply(0, None, None, Update(view, outbox.take())), _shared(view))
        while True:
            try:
                call: Call = channel.receive()
            except EOFError:
                break
            if call.operation == STOP.operation:
                break
            result, failure, update = None, None, None
            try:
                result = getattr(host, call.operation)(*call.args)
            except Exception as exc:  # the HTTP process raises it for the request
                failure = Failure.of(exc)
            if call.operation in BATCHES:
                view = VenueView.of(venue, view)
                update = Update(view, outbox.take())
            channel.send(Reply(call.id, result, failure, update), _shared(view))
    finally:
        venue.close()


def _shared(view: VenueView) -> dict[str, object]:
    """The view's large parts that change seldom: sent once, then by name while they are the same objects."""
    pricing = view.stream.pricing
    return {"row_of": view.row_of, "accounts": pricing.store, "history": pricing.history}


def _die_with(parent: int) -> None:
    """Be killed when the process `parent` (the HTTP process) dies, however it dies (Linux)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the signal was asked for
        os._exit(1)


class VenueClient(VenueAccess):
    """The HTTP process's side: the replica (`view`, with full figures from its own `FigureCopies`) and the calls
    sent to the engine process, each awaited on the caller's event loop."""

    def __init__(self, process: multiprocessing.process.BaseProcess, channel: Channel, first: Update) -> None:
        self.process = process
        self.channel = channel
        self.copies = FigureCopies(first.view.im.size)
        self._apply(first)
        self._alive = True
        self._ids = itertools.count(1)
        self._waiting: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]] = {}
        self._reader = threading.Thread(target=self._read, name="solvent-engine-reader", daemon=True)
        self._reader.start()

    @classmethod
    def start(cls, options: Any) -> VenueClient:
        """Start the engine process on `options` (`ServeOptions`) and wait for its venue (loaded or restored
        from the store: minutes for a large book)."""
        ours, theirs = socket.socketpair()
        context = multiprocessing.get_context("spawn")
        process = context.Process(
            target=run_engine, args=(theirs, options, os.getpid()), name="solvent-engine", daemon=True
        )
        process.start()
        theirs.close()
        channel = Channel(ours)
        try:
            first: Reply = channel.receive()
        except EOFError:
            process.join()
            raise EngineStopped(f"the engine process exited with {process.exitcode} before its venue was up") from None
        if first.failure is not None or first.update is None:
            process.join()
            channel.close()
            raise first.failure.exception() if first.failure is not None else EngineStopped("no venue")
        return cls(process, channel, first.update)

    @property
    def alive(self) -> bool:
        return self._alive

    async def call(self, operation: str, *args: Any) -> Any:
        if not self._alive:
            raise EngineStopped("the engine process is gone")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        number = next(self._ids)
        self._waiting[number] = (loop, future)
        if not self._alive:  # the reader stopped in between: it failed the calls it knew of
            self._waiting.pop(number, None)
            raise EngineStopped("the engine process is gone")
        await anyio.to_thread.run_sync(self.channel.send, Call(number, operation, args))  # a full socket waits there
        reply: Reply = await future
        if reply.failure is not None:
            raise reply.failure.exception()
        return reply.result

    def close(self) -> None:
        """Ask the engine process to commit and stop; kill it if it has not within CLOSE_TIMEOUT_S."""
        if self._alive:
            try:
                self.channel.send(STOP)
            except OSError:
                pass
        self.process.join(CLOSE_TIMEOUT_S)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.channel.close()

    def _read(self) -> None:
        """The reader thread: apply each reply's update to the replica, then settle its call."""
        try:
            while True:
                reply: Reply = self.channel.receive()
                if reply.update is not None:
                    self._apply(reply.update)
                loop, future = self._waiting.pop(reply.id)
                loop.call_soon_threadsafe(_settle, future, reply)
        except (EOFError, OSError):
            self._alive = False
            if self._waiting:
                log.error("the engine process stopped", extra={"calls_lost": len(self._waiting)})
            for loop, future in self._waiting.values():
                loop.call_soon_threadsafe(_fail, future)
            self._waiting.clear()

    def _apply(self, update: Update) -> None:
        for remargin in update.remargins:
            self.copies.add(remargin)
        self.view = update.view.with_figures(self.copies.publish())


def _settle(future: asyncio.Future[Any], reply: Reply) -> None:
    if not future.done():
        future.set_result(reply)


def _fail(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(EngineStopped("the engine process stopped"))
