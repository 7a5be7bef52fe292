"""One store from one URL: `memory://`, `sqlite:///path/to/file.db` (`sqlite:///relative.db` is relative to the
working directory, `sqlite:////abs/path.db` absolute) or `postgresql://user@host:port/db?schema=name` (the
`schema` parameter, default `solvent`, names the PostgreSQL schema holding the tables)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from solvent.errors import InputError
from solvent.store import MemoryStore, Store

SCHEMES = ("memory", "sqlite", "postgresql", "postgres")

#: The store `solvent serve` keeps its log and snapshots in by default: a SQLite file (zero set-up); restarted on
#: it, the service resumes where it stopped (`Venue.open`).
DEFAULT_STORE = "sqlite:///solvent-service.sqlite"


def open_store(url: str) -> Store:
    """The store `url` names; an unknown scheme or a SQLite URL without a path is an InputError."""
    parts = urlsplit(url)
    if parts.scheme == "memory":
        return MemoryStore()
    if parts.scheme == "sqlite":
        from solvent.store.sqlite import SqliteStore

        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        if not path:
            raise InputError(url, "", "a sqlite store needs a file: sqlite:///path/to/file.db")
        return SqliteStore(path)
    if parts.scheme in ("postgresql", "postgres"):
        from solvent.store.postgres import PostgresStore

        query = dict(parse_qsl(parts.query))
        schema = query.pop("schema", "solvent")
        return PostgresStore(urlunsplit(parts._replace(query=urlencode(query))), schema=schema)
    raise InputError(url, "", f"unknown store scheme {parts.scheme!r}: one of {', '.join(SCHEMES)}")
