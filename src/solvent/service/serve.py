"""`solvent serve`: build the venue (from files, or the demo venue) in an engine process of its own
(service/engine_process.py), load the keys, and run the API on granian in this process (one worker: it holds the
replica of what the venue published, and sends the engine its batches)."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any, Final

from solvent._extras import check_extra, requires_extra
from solvent.service.auth import KeyRing, Role, add_key
from solvent.service.build import ServeOptions

check_extra("service")  # before `solvent serve` writes its first key: the server and the API are imported later

#: The fields of a log record that are not the caller's `extra`.
_STANDARD: Final = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message and the record's `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def _check_store_extra(url: str) -> None:
    """A PostgreSQL store's extra is installed (MissingExtraError, before the engine process opens the store)."""
    from urllib.parse import urlsplit

    if urlsplit(url).scheme in ("postgresql", "postgres"):
        check_extra("postgres")


def first_key(path: str) -> str | None:
    """If the keys file `path` is missing, create it with one operator key and return that key (else None)."""
    if Path(path).exists():
        return None
    return add_key(path, "operator", Role.OPERATOR)


def serve(options: ServeOptions) -> None:
    """Run the service until interrupted."""
    with requires_extra("service"):
        from granian.constants import Interfaces
        from granian.server.embed import Server

    from solvent.service.app import create_app
    from solvent.service.engine_process import VenueClient

    keys = KeyRing.load(options.keys)
    _check_store_extra(options.store)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    venue = VenueClient.start(options)
    try:
        app = create_app(venue, keys)
        server = Server(app, address=options.host, port=options.port, interface=Interfaces.ASGI, log_enabled=False)
        logging.getLogger("solvent.service").info("listening", extra={"host": options.host, "port": options.port})
        asyncio.run(server.serve())
    finally:
        venue.close()
