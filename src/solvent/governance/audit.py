"""The audit log of applied parameter changes, behind a small interface (a database store can implement it).

`AuditLog` is two methods: `append(record)` and `records()`. `JsonlAuditLog` keeps one `solvent.audit/1` record
per line of an append-only file (each line written whole and flushed to disk before `append` returns; `locked`
serialises writers);
`MemoryAuditLog` is its in-memory twin for tests. docs/formats.md, "Audit log", describes the records.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Protocol

import msgspec

from solvent.errors import InputError
from solvent.formats.errors import decode_json
from solvent.formats.governance import AuditRecord


class AuditLog(Protocol):
    """Where applied changes are recorded, oldest first."""

    def append(self, record: AuditRecord) -> None: ...

    def records(self) -> list[AuditRecord]: ...


class MemoryAuditLog:
    """An audit log held in memory."""

    def __init__(self) -> None:
        self._records: list[AuditRecord] = []

    def append(self, record: AuditRecord) -> None:
        self._records.append(record)

    def records(self) -> list[AuditRecord]:
        return list(self._records)


class JsonlAuditLog:
    """An append-only JSONL file of `solvent.audit/1` records; a missing file is an empty log."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold an exclusive lock on `<log>.lock` (flock): one writer checks the delays and appends at a time."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_WRONLY | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def append(self, record: AuditRecord) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = msgspec.json.encode(record) + b"\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def records(self) -> list[AuditRecord]:
        if not self.path.exists():
            return []
        out = []
        for i, line in enumerate(self.path.read_bytes().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                out.append(decode_json(line, AuditRecord, str(self.path)))
            except InputError as exc:
                raise InputError(
                    str(self.path), f"line {i}" + (f".{exc.where}" if exc.where else ""), exc.message
                ) from None
        return out


def last_change(log: AuditLog, path: str) -> datetime | None:
    """When `path` was last changed by an applied record (None: never)."""
    times = [r.applied_at for r in log.records() if any(c.path == path for c in r.changes)]
    return max(times) if times else None
