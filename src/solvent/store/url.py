"""One store from one URL: `memory://` here; `sqlite:///path` and `postgresql://...` join when their stores land
(the durable stores' issue fills this function in, keeping its signature)."""

from __future__ import annotations

from urllib.parse import urlsplit

from solvent.errors import InputError
from solvent.store import MemoryStore, Store

SCHEMES = ("memory",)


def open_store(url: str) -> Store:
    """The store `url` names; an unknown scheme is an InputError."""
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        return MemoryStore()
    raise InputError(url, "", f"unknown store scheme {scheme!r}: one of {', '.join(SCHEMES)}")
