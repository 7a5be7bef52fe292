"""Following a live feed (`solvent stream --follow`): NDJSON records read as they arrive from stdin or a growing
file (tail -f), fed to the engine, the events written as they are published.

Standard input (`--feed -`) is read to its end, whatever it is (a pipe, a terminal, a redirected file); a named
regular file is waited on for more lines (polled every `poll_s`) until `stop` is set (the CLI sets it on SIGTERM);
a named FIFO is read to its end. A partial last line waits for its newline: at the end of the input it is the last
record; when stopped, it is left unapplied (its writer may not be done). Each chunk of lines that has arrived is
fed to the engine, then the open batch is closed, so no event waits for the next record: without `block_ms` the
events are those of a replay of the same records, byte for byte; with it, a window is also closed whenever the
input goes quiet. A followed file is read from where the follower got to: one truncated or rotated under it is not
followed (start a resumed follower on the new file).

A resumed follower (`state_in`) skips the records at the head of its input that the saved stream has applied
already (`seq` not above its last), so a stopped follower can be restarted on the same file.
"""

from __future__ import annotations

import os
import select
import stat
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any, Final, NamedTuple

from solvent.stream.events import Event, encode_events
from solvent.stream.feedio import decode_record
from solvent.stream.replay import ReplayFiles, engine_for, write_summary

#: Bytes read at a time.
CHUNK: Final = 1 << 16


class Lines:
    """The complete lines of a file descriptor as they arrive, in chunks; `pending` holds a partial last line."""

    def __init__(self, fd: int, stop: threading.Event, poll_s: float = 0.1, tail: bool = True) -> None:
        self.fd = fd
        self.stop = stop
        self.poll_s = poll_s
        self.pending = b""
        self.regular = stat.S_ISREG(os.fstat(fd).st_mode)
        self.tail = tail and self.regular  # a regular file may grow after its end; a pipe's end is the end

    def chunks(self) -> Iterator[list[bytes]]:
        """Each read's complete lines (without their newline), until the input ends (not a tailed file's end) or
        `stop` is set."""
        while not self.stop.is_set():
            if not self.regular and not select.select([self.fd], [], [], self.poll_s)[0]:
                continue
            data = os.read(self.fd, CHUNK)
            if data:
                *lines, self.pending = (self.pending + data).split(b"\n")
                if lines:
                    yield lines
            elif self.tail:
                self.stop.wait(self.poll_s)
            else:
                if self.pending:
                    yield [self.pending]
                    self.pending = b""
                return


class Followed(NamedTuple):
    """A follower's end: its summary (`solvent.stream-summary/1`) and the bytes of a partial last line left
    unapplied (0 when the input ended on a complete line)."""

    summary: dict[str, Any]
    unapplied_bytes: int


def follow(
    files: ReplayFiles, fd: int, open_events: Callable[[], IO[bytes]], stop: threading.Event, poll_s: float = 0.1
) -> Followed:
    """Follow the feed on `fd` (named `files.feed`; `-`, standard input, is read to its end), writing events to
    `open_events()` (opened once the starting point has loaded) as they are published; at the end of the input or
    on `stop`, write the summary and, if asked, the state. Bad input raises InputError after the events of every
    record before it have been written."""
    opening: list[Event] = []
    engine = engine_for(files, opening.extend)
    events = open_events()

    def sink(published: Sequence[Event]) -> None:
        if published:
            events.write(encode_events(published))

    engine.sink = sink
    sink(opening)
    lines = Lines(fd, stop, poll_s, tail=files.feed != "-")
    index = number = 0  # records and lines read so far
    fresh = files.state_in is None
    try:
        for chunk in lines.chunks():
            for line in chunk:
                number += 1
                if not line.strip():
                    continue
                record = decode_record(line, files.feed, index, number)
                index += 1
                fresh = fresh or record.seq > engine.last_input_seq
                if fresh:
                    engine.feed([record], files.block_ms, files.feed, first_index=index - 1)
            engine.flush()
            events.flush()
    finally:
        engine.flush()
        events.flush()
    return Followed(write_summary(engine, files), len(lines.pending))
