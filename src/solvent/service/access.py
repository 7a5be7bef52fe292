"""How the HTTP API reaches its venue: the view the venue published after its last batch (service/view.py), read
at once, and the venue's operations (service/host.py), awaited without blocking the event loop.

Two ways: `LocalVenue`, the venue in this process (each call on a worker thread, as the Litestar test client and a
venue beside a bus use it), and `VenueClient` (service/engine_process.py), the venue in a process of its own, which
`solvent serve` runs so that the HTTP process's interpreter serves requests only."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, cast

from solvent._extras import requires_extra
from solvent._numba import set_threads
from solvent.params import MarginParams
from solvent.service.host import BATCH_THREADS, BATCHES, Ingested, ParamsChanged, VenueHost
from solvent.service.venue import Venue
from solvent.service.view import VenueView
from solvent.stream import events as ev
from solvent.stream.feed import FeedRecord

with requires_extra("service"):
    import anyio


class VenueAccess(ABC):
    """The venue as the API sees it: `view`, replaced after every batch, and the operations of `VenueHost`."""

    view: VenueView

    @property
    def alive(self) -> bool:
        """Whether the venue still answers."""
        return True

    async def ingest(self, records: Sequence[FeedRecord], source: str) -> Ingested:
        return cast(Ingested, await self.call("ingest", list(records), source))

    async def change_params(self, params: MarginParams) -> ParamsChanged:
        return cast(ParamsChanged, await self.call("change_params", params))

    async def fresh_account(self, account: str) -> dict[str, Any] | None:
        return cast(dict[str, Any] | None, await self.call("fresh_account", account))

    async def dashboard(self) -> dict[str, Any]:
        return cast(dict[str, Any], await self.call("dashboard"))

    async def events_after(self, seq: int, limit: int) -> list[ev.Event]:
        return cast(list[ev.Event], await self.call("events_after", seq, limit))

    @abstractmethod
    async def call(self, operation: str, *args: Any) -> Any:
        """`VenueHost.<operation>(*args)` on the venue; after a batch, `view` is the new one before this returns."""

    @abstractmethod
    def close(self) -> None:
        """Release the venue."""


class LocalVenue(VenueAccess):
    """The venue in this process: each call on a worker thread, under the venue's lock (a batch's kernels on
    `BATCH_THREADS` threads, the GIL released), and the view published on that thread after each batch."""

    def __init__(self, venue: Venue) -> None:
        self.venue = venue
        self.host = VenueHost(venue)
        self.view = VenueView.of(venue)

    async def call(self, operation: str, *args: Any) -> Any:
        return await anyio.to_thread.run_sync(self._run, operation, args)

    def close(self) -> None:
        """Nothing to release: the venue is the caller's."""

    def _run(self, operation: str, args: tuple[Any, ...]) -> Any:
        set_threads(BATCH_THREADS)  # for this worker thread (numba's setting is per thread)
        with self.venue.lock:
            try:
                return getattr(self.host, operation)(*args)
            finally:
                if operation in BATCHES:
                    self.view = VenueView.of(self.venue, self.view)
