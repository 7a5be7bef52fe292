"""Messages between `solvent serve`'s two processes (service/engine_process.py) over a socket pair: pickled
(protocol 5) with every contiguous array out of band, each read by the receiver straight into an array of its own
(the kernel copies it, the GIL released), and large objects the peer already holds (the accounts' copy, the id
index) sent by name instead of again."""

from __future__ import annotations

import io
import pickle
import socket
import struct
import threading
from collections.abc import Mapping
from typing import Any, Final

import numpy as np

_PREFIX: Final = struct.Struct("<QI")  # header bytes, out-of-band buffers


class Channel:
    """One end of a socket pair. `send` may be called from any thread (one message at a time); `receive` from
    one thread only."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._send_lock = threading.Lock()
        self._shared: dict[str, object] = {}  # name -> an object the peer holds under that name
        self._names: dict[int, str] = {}  # id of each of them -> its name
        self._held: dict[str, object] = {}  # name -> an object the peer sent under that name

    def send(self, message: object, share: Mapping[str, object] | None = None) -> None:
        """Send `message`. `share`: objects in it that the peer should keep under these names, so that a later
        message holding the same object (by identity) sends only its name; an object under a name already shared
        replaces the one before it."""
        with self._send_lock:
            new = {name: obj for name, obj in (share or {}).items() if self._shared.get(name) is not obj}
            buffers: list[pickle.PickleBuffer] = []
            header = io.BytesIO()
            pickler = pickle.Pickler(header, protocol=5, buffer_callback=buffers.append)
            names = self._names
            pickler.persistent_id = lambda obj: names.get(id(obj))  # type: ignore[method-assign]
            pickler.dump((new, message))
            raw = [b.raw() for b in buffers]
            sizes = struct.pack(f"<{len(raw)}Q", *(r.nbytes for r in raw))
            self.sock.sendall(_PREFIX.pack(header.tell(), len(raw)) + sizes + header.getbuffer())
            for chunk in raw:
                self.sock.sendall(chunk)
            for name, obj in new.items():
                old = self._shared.get(name)
                if old is not None:
                    del self._names[id(old)]
                self._shared[name] = obj
                self._names[id(obj)] = name

    def receive(self) -> Any:
        """The next message; EOFError when the peer has closed its end (or died)."""
        n_header, n_buffers = _PREFIX.unpack(self._read(_PREFIX.size))
        sizes = struct.unpack(f"<{n_buffers}Q", self._read(8 * n_buffers))
        header = self._read(n_header)
        buffers = [self._read_into(np.empty(size, dtype=np.uint8)) for size in sizes]
        unpickler = pickle.Unpickler(io.BytesIO(header), buffers=buffers)
        unpickler.persistent_load = self._held.__getitem__  # type: ignore[method-assign]
        new, message = unpickler.load()
        self._held.update(new)
        return message

    def close(self) -> None:
        self.sock.close()

    def _read(self, n: int) -> bytes:
        return bytes(self._read_into(bytearray(n)))

    def _read_into(self, buffer: Any) -> Any:
        """Fill `buffer` (a bytearray or a uint8 array) from the socket."""
        view = memoryview(buffer).cast("B")
        got = 0
        while got < len(view):
            n = self.sock.recv_into(view[got:])
            if n == 0:
                raise EOFError("the other process closed the channel")
            got += n
        return buffer
