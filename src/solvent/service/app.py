"""The HTTP API (Litestar): parses requests, checks the caller's key and role, reads the venue's published view or
calls the venue (service/access.py: in this process, or in an engine process of its own), answers.

Endpoints (docs/service.md): records in (one JSON record, or NDJSON / Arrow IPC in bulk), an account's
requirement, a pre-trade what-if, the venue summary, the events as server-sent events, parameter changes,
health, readiness, Prometheus metrics and the OpenAPI document at /schema. Bad input is a 4xx naming the
field; the caller's key never reaches a log line (its holder's name does).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any, Final

import msgspec
import pyarrow as pa

from solvent._extras import requires_extra
from solvent.errors import InputError
from solvent.formats.schemas import Identifier, NonNegativeAmount, Price, Quantity
from solvent.params import MarginParams
from solvent.service.access import LocalVenue, VenueAccess
from solvent.service.auth import KeyEntry, KeyRing, Permission
from solvent.service.dashboard import page
from solvent.service.host import Refused
from solvent.service.metrics import ServiceMetrics
from solvent.service.venue import Venue
from solvent.stream import events as ev
from solvent.stream.feed import FeedRecord, ParamsChange
from solvent.stream.feedio import decode_ndjson, decode_table

with requires_extra("service"):
    import anyio
    from litestar import Litestar, Request, Response, get, post, put
    from litestar.connection import ASGIConnection
    from litestar.exceptions import (
        ClientException,
        HTTPException,
        NotAuthorizedException,
        NotFoundException,
        PermissionDeniedException,
        ServiceUnavailableException,
    )
    from litestar.handlers.base import BaseRouteHandler
    from litestar.openapi.config import OpenAPIConfig
    from litestar.openapi.spec import Components, SecurityScheme
    from litestar.params import FromPath, HeaderParameter, JSONBody, QueryParameter
    from litestar.response import Stream

log = logging.getLogger("solvent.service")
audit = logging.getLogger("solvent.service.audit")

NDJSON: Final = "application/x-ndjson"
ARROW: Final = "application/vnd.apache.arrow.stream"
MAX_BODY_BYTES: Final = 16 * 1024 * 1024
SSE: Final = "text/event-stream"
SSE_HEADERS: Final = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
#: How often an event stream that has caught up looks for new events, seconds.
EVENT_POLL_S: Final = 0.05
EVENT_PAGE: Final = 1000
_REFUSED = (ev.InputRejected, ev.FillRejected)


class WhatIf(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A trade to check: `account` buys `quantity` contracts of `instrument` (negative: sells) at `price`, paying
    `fee` USD."""

    account: Identifier
    instrument: Identifier
    quantity: Quantity
    price: Price
    fee: NonNegativeAmount = 0.0


# ------------------------------------------------------------------------------------------- access


def _holder(connection: ASGIConnection[Any, Any, Any, Any]) -> KeyEntry:
    """The key's entry: 401 without a key or with one not in the ring."""
    header = connection.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise NotAuthorizedException("missing API key: send 'Authorization: Bearer <key>'")
    keys: KeyRing = connection.app.state.key_ring
    entry = keys.holder(key.strip())
    if entry is None:
        raise NotAuthorizedException("unknown API key")
    return entry


async def _guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """401 without a valid key; 403 when its role grants none of the handler's permissions."""
    entry = _holder(connection)
    needed: frozenset[Permission] = handler.opt["permissions"]
    if not any(entry.may(p) for p in needed):
        raise PermissionDeniedException(f"role {entry.role} may not {' or '.join(sorted(needed))}")
    connection.state.holder = entry


def _require(*permissions: Permission) -> dict[str, Any]:
    """A handler's guard and the permissions it accepts (any one suffices)."""
    return {"guards": [_guard], "opt": {"permissions": frozenset(permissions)}, "security": [{"apiKey": []}]}


def _own(request: Request[Any, Any, Any], account: str) -> KeyEntry:
    """The caller, who must be allowed to see `account`: any account, or its own."""
    entry: KeyEntry = request.state.holder
    if not entry.may(Permission.READ_ANY_ACCOUNT) and entry.account != account:
        raise PermissionDeniedException(f"{entry.name} may read account {entry.account!r} only")
    return entry


# ------------------------------------------------------------------------------------------ helpers


def _access(request: Request[Any, Any, Any]) -> VenueAccess:
    access: VenueAccess = request.app.state.venue
    return access


def _events(events: Sequence[ev.Event]) -> list[dict[str, Any]]:
    return [msgspec.to_builtins(e) for e in events]


async def _ingest(request: Request[Any, Any, Any], records: Sequence[FeedRecord], source: str) -> Response[Any]:
    """Apply `records` as one batch. 200 with the events; 422 when the venue refused a record (logged with its
    rejection event, the other records applied) or the batch is out of order (nothing applied)."""
    entry: KeyEntry = request.state.holder
    if any(isinstance(r, ParamsChange) for r in records):
        raise PermissionDeniedException("parameters change through PUT /params (the operator's), not as a record")
    metrics: ServiceMetrics = request.app.state.metrics
    try:
        batch = await _access(request).ingest(records, source)
    except Refused as exc:
        raise ClientException(str(exc), status_code=422) from None
    fresh = [r for r in records if r.seq > batch.seen]
    events = batch.events
    metrics.batch(fresh, events, batch.seconds)
    log.info(
        "ingested",
        extra={"who": entry.name, "records": len(fresh), "skipped": len(records) - len(fresh), "events": len(events)},
    )
    refused = [e for e in events if isinstance(e, _REFUSED)]
    body = {"applied": len(fresh), "skipped": len(records) - len(fresh), "events": _events(events)}
    if refused:
        first = refused[0]
        reason = first.reason if isinstance(first, ev.FillRejected) else f"{first.field}: {first.reason}"
        return Response({"detail": f"record seq {first.cause} refused: {reason}", **body}, status_code=422)
    return Response(body)


# ----------------------------------------------------------------------------------------- handlers


@get("/health", sync_to_thread=False)
def health() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@get("/ready", sync_to_thread=False)
def ready(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Readiness: the venue is up (503 if its engine process is gone); the last input and event sequence numbers
    as of the last batch."""
    access = _access(request)
    if not access.alive:
        raise ServiceUnavailableException("the venue's engine process is gone")
    view = access.view
    return {"status": "ready", "last_input_seq": view.last_input_seq, "next_event_seq": view.next_event_seq}


@get("/metrics", sync_to_thread=True, media_type="text/plain; version=0.0.4; charset=utf-8")
def metrics(request: Request[Any, Any, Any]) -> bytes:
    """Prometheus metrics."""
    service_metrics: ServiceMetrics = request.app.state.metrics
    return service_metrics.exposition()


@post("/records", status_code=200, **_require(Permission.INGEST))
async def ingest_record(request: Request[Any, Any, Any], data: JSONBody[FeedRecord]) -> Response[Any]:
    """One feed record (`solvent.feed/1`, JSON): market data, a fill, a deposit or a withdrawal."""
    return await _ingest(request, [data], "<request>")


@post("/records/bulk", status_code=200, **_require(Permission.INGEST))
async def ingest_bulk(
    request: Request[Any, Any, Any], content_type: Annotated[str, HeaderParameter(name="content-type")]
) -> Response[Any]:
    """Feed records in one batch: NDJSON (`application/x-ndjson`) or an Arrow IPC stream
    (`application/vnd.apache.arrow.stream`) in the feed's Parquet layout (docs/formats.md)."""
    kind = content_type.split(";")[0].strip().lower()
    if kind not in (NDJSON, ARROW):
        raise ClientException(f"content-type {kind!r}: send {NDJSON} or {ARROW}", status_code=415)
    data = await request.body()
    records = await anyio.to_thread.run_sync(_decode_bulk, kind, data)
    return await _ingest(request, records, "<body>")


def _decode_bulk(kind: str, data: bytes) -> Sequence[FeedRecord]:
    try:
        records = decode_ndjson(data, "<body>") if kind == NDJSON else decode_table(_arrow_table(data), "<body>")
    except InputError as exc:
        raise ClientException(str(exc)) from None
    if not records:
        raise ClientException("<body>: no records")
    return records


def _arrow_table(data: bytes) -> pa.Table:
    try:
        with pa.ipc.open_stream(data) as reader:
            return reader.read_all()
    except (pa.ArrowException, OSError) as exc:
        raise InputError("<body>", "", f"not a readable Arrow IPC stream ({exc})") from None


@get("/accounts/{account:path}", **_require(Permission.READ_ANY_ACCOUNT, Permission.READ_OWN_ACCOUNT))
async def account(
    request: Request[Any, Any, Any],
    account: FromPath[str],
    fresh: Annotated[bool, QueryParameter(description="margin the account afresh, under the venue's lock")] = False,
) -> dict[str, Any]:
    """An account's requirement: IM with every term, MM, equity, health, Greeks, status and early flag. By default
    as the stream last margined it (`as_of_seq`: that batch's sequence number), read from the copy published after
    the last batch without waiting for a batch in progress; with `fresh=true` (or before any copy) margined now,
    under the venue's lock. An account id may hold slashes (a sub-account: /accounts/alice/eth-short)."""
    account = account.removeprefix("/")
    _own(request, account)
    access = _access(request)
    if not fresh:
        view = access.view
        row = view.row_of.get(account)
        if row is None:
            raise NotFoundException(f"unknown account {account!r}")
        document = view.full_account(row, account)
        if document is not None:
            return document
    margined = await access.fresh_account(account)
    if margined is None:
        raise NotFoundException(f"unknown account {account!r}")
    return margined


@get(
    "/figures/{account:path}",
    sync_to_thread=False,
    **_require(Permission.READ_ANY_ACCOUNT, Permission.READ_OWN_ACCOUNT),
)
def figures(request: Request[Any, Any, Any], account: FromPath[str]) -> dict[str, Any]:
    """An account's IM, MM, equity, health, status and early flag as the venue published them after its last batch
    (`last_input_seq`, `time`): no terms, but it never waits for a batch in progress."""
    account = account.removeprefix("/")
    _own(request, account)
    view = _access(request).view
    row = view.row_of.get(account)
    if row is None:
        raise NotFoundException(f"unknown account {account!r}")
    return {"account": account, **view.account(row)}


@post("/what-if", status_code=200, sync_to_thread=False, **_require(Permission.WHAT_IF))
def what_if(request: Request[Any, Any, Any], data: JSONBody[WhatIf]) -> dict[str, Any]:
    """Whether the account may make this trade, and its IM before and after (the price band applies: a price too
    far from the mark is refused), on the state after the last batch (`as_of_seq`): it never waits for a batch in
    progress, and runs on the event loop (a fraction of a millisecond; a screened account's standing is margined
    afresh, one account)."""
    _own(request, data.account)
    view = _access(request).view
    store = view.stream.pricing.store
    if data.account not in store.row_of:
        raise NotFoundException(f"unknown account {data.account!r}")
    if data.instrument not in store.instrument_row:
        raise NotFoundException(f"unknown instrument {data.instrument!r}")
    decision = view.what_if(data.account, data.instrument, data.quantity, data.price, data.fee)
    return {**asdict(decision), "as_of_seq": view.last_input_seq}


@get("/venue", sync_to_thread=False, **_require(Permission.READ_VENUE))
def venue_summary(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The venue as of its last batch: what makes its figures (provenance: engine, parameters' digest, input files),
    the run's figures, the feed's time and last sequence number, accounts by status, the insurance fund, each
    asset's price and oracle status, total equity, IM and MM."""
    return _access(request).view.venue


@get("/dashboard", sync_to_thread=False, media_type="text/html; charset=utf-8", include_in_schema=False)
def dashboard() -> str:
    """The dashboard page (open: it holds no numbers; it fetches them with the key given in its URL's fragment,
    `/dashboard#key=...`, which the browser never sends)."""
    return page()


@get("/dashboard/data", **_require(Permission.READ_VENUE))
async def dashboard_numbers(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The dashboard's numbers: venue equity against IM and MM, accounts by health bucket, each factor's share of
    IM, the riskiest accounts with their breakdown, oracle status per asset, the last event's sequence number."""
    return await _access(request).dashboard()


@get("/events", **_require(Permission.READ_VENUE))
async def events(
    request: Request[Any, Any, Any],
    after: Annotated[int | None, QueryParameter(ge=-1, description="resume after this event sequence number")] = None,
    follow: Annotated[bool, QueryParameter(description="keep the stream open for new events")] = True,
    last_event_id: Annotated[str | None, HeaderParameter(name="last-event-id")] = None,
) -> Stream:
    """The events as server-sent events (`id` = sequence number, `event` = type), from after `after` or the
    `Last-Event-ID` header (default: the first); with `follow=false` the stream ends once it has caught up."""
    start = after
    if start is None and last_event_id is not None:
        try:
            start = int(last_event_id)
        except ValueError:
            raise ClientException(f"Last-Event-ID: not a sequence number: {last_event_id!r}") from None
    access = _access(request)
    start = -1 if start is None else start
    first = await access.events_after(start, EVENT_PAGE)  # read before the answer starts: it goes out with it
    return Stream(_event_stream(access, start, first, follow), media_type=SSE, headers=SSE_HEADERS)


async def _event_stream(access: VenueAccess, after: int, page: list[ev.Event], follow: bool) -> AsyncIterator[bytes]:
    """Each page of events as one chunk of server-sent events (a client reading the stream gets a page at once)."""
    while True:
        if page:
            yield b"".join(
                b"id: %d\r\nevent: %s\r\ndata: %s\r\n\r\n" % (e.seq, type(e).__name__.encode(), msgspec.json.encode(e))
                for e in page
            )
            after = page[-1].seq
        if len(page) < EVENT_PAGE:
            if not follow:
                return
            await anyio.sleep(EVENT_POLL_S)
        page = await access.events_after(after, EVENT_PAGE)


@put("/params", **_require(Permission.CHANGE_PARAMS))
async def change_params(request: Request[Any, Any, Any], data: JSONBody[MarginParams]) -> dict[str, Any]:
    """New model parameters (a whole `solvent.params/1` document), applied as the feed's next record (the next
    sequence number, at the feed's current time); logged with who, when and the parameters' digest before and
    after."""
    entry: KeyEntry = request.state.holder
    try:
        changed = await _access(request).change_params(data)
    except Refused as exc:
        raise ClientException(str(exc), status_code=422) from None
    audit.info(
        "parameters changed",
        extra={
            "who": entry.name,
            "when": datetime.now(UTC).isoformat(),
            "seq": changed.seq,
            "before": changed.before,
            "after": changed.after,
        },
    )
    return {
        "seq": changed.seq,
        "time": changed.time,
        "digest_before": changed.before,
        "digest_after": changed.after,
        "events": _events(changed.events),
    }


async def _log_server_error(exception: Exception, scope: Any) -> None:
    """Log a 5xx with its traceback (a 4xx is the caller's: its answer says why, no log line)."""
    if not isinstance(exception, HTTPException) or exception.status_code >= 500:
        log.error("server error", exc_info=exception, extra={"path": scope.get("path")})


# -------------------------------------------------------------------------------------------- the app


def create_app(venue: Venue | VenueAccess, keys: KeyRing, max_body_bytes: int = MAX_BODY_BYTES) -> Litestar:
    """The API over `venue` (a `Venue` is served in this process: `LocalVenue`), accepting `keys`."""
    app = Litestar(
        route_handlers=[
            health,
            ready,
            metrics,
            ingest_record,
            ingest_bulk,
            account,
            figures,
            what_if,
            venue_summary,
            events,
            change_params,
            dashboard,
            dashboard_numbers,
        ],
        openapi_config=OpenAPIConfig(
            title="solvent",
            version="1",
            path="/schema",
            components=Components(
                security_schemes={"apiKey": SecurityScheme(type="http", scheme="bearer", description="an API key")}
            ),
        ),
        request_max_body_size=max_body_bytes,
        logging_config=None,  # the service's logging is the host's (`solvent serve`: JSON lines)
        after_exception=[_log_server_error],
        debug=False,
    )
    access = venue if isinstance(venue, VenueAccess) else LocalVenue(venue)
    app.state.venue = access
    app.state.key_ring = keys
    app.state.metrics = ServiceMetrics(access)
    return app
