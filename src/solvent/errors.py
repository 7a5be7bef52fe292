"""One exception tree. The CLI turns `InputError` into a one-line message and exit status 2."""

from __future__ import annotations


class SolventError(Exception):
    """Base of every error solvent raises on purpose."""


class InputError(SolventError):
    """Bad input: names the file, the record and the field, and says what is wrong.

    `str(error)` is the one line the CLI prints, e.g.
    ``examples/portfolio.json: accounts[3].positions[0].instrument: unknown instrument 'BTC-X'``.
    """

    def __init__(self, source: str, where: str, message: str) -> None:
        message = " ".join(message.split()) if "\n" in message or "\r" in message else message  # one line
        self.source = source
        self.where = where
        self.message = message
        parts = [p for p in (source, where) if p]
        super().__init__(": ".join([*parts, message]))


class ModelError(SolventError):
    """The model cannot produce a number it could stand behind (fail closed)."""
