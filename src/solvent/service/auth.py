"""API keys and roles (`solvent.keys/1`): who may call what.

A key is a random token (`sk_` + 32 random bytes, URL-safe base64) shown once when it is made; the keys file
keeps only its SHA-256. A fast hash suffices: the token has 256 bits of entropy, so a stolen file cannot be
brute-forced (NIST SP 800-63B 5.1.1.2 asks a slow, salted hash only of secrets a person chose). Each key has one
role; a trader's key also names its account.

| role     | may                                                             |
| -------- | --------------------------------------------------------------- |
| read     | read any account, the venue summary and the events              |
| trader   | read its own account, what-if on its own account                |
| feeder   | ingest market data, fills and collateral moves (not parameters) |
| operator | what read may, and change the parameters                        |
"""

from __future__ import annotations

import hashlib
import secrets
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Final

import msgspec

from solvent.errors import InputError
from solvent.formats.errors import read_bytes, split_validation_message
from solvent.formats.io import atomic_output
from solvent.formats.schemas import Identifier

KEYS_SCHEMA: Final = "solvent.keys/1"
KEY_PREFIX: Final = "sk_"


class Role(StrEnum):
    READ = "read"
    TRADER = "trader"
    FEEDER = "feeder"
    OPERATOR = "operator"


class Permission(StrEnum):
    """What an endpoint needs."""

    READ_ANY_ACCOUNT = "read any account"
    READ_OWN_ACCOUNT = "read its own account"
    READ_VENUE = "read the venue"
    WHAT_IF = "run a what-if on its own account"
    INGEST = "ingest records"
    CHANGE_PARAMS = "change the parameters"


GRANTS: Final[dict[Role, frozenset[Permission]]] = {
    Role.READ: frozenset({Permission.READ_ANY_ACCOUNT, Permission.READ_VENUE}),
    Role.TRADER: frozenset({Permission.READ_OWN_ACCOUNT, Permission.WHAT_IF}),
    Role.FEEDER: frozenset({Permission.INGEST}),
    Role.OPERATOR: frozenset({Permission.READ_ANY_ACCOUNT, Permission.READ_VENUE, Permission.CHANGE_PARAMS}),
}

Digest = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$", description="SHA-256 of the key, hex")]


class KeyEntry(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One key: who holds it (`name`, shown in logs), its role, a trader's account, the key's SHA-256."""

    name: Identifier
    role: Role
    sha256: Digest
    account: Identifier | None = None

    def __post_init__(self) -> None:
        if (self.role == Role.TRADER) != (self.account is not None):
            raise ValueError("account: a trader's key names its account, and only a trader's")

    def may(self, permission: Permission) -> bool:
        return permission in GRANTS[self.role]


class KeysFile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    schema: Annotated[str, msgspec.Meta(pattern=f"^{KEYS_SCHEMA}$")] = KEYS_SCHEMA
    keys: tuple[KeyEntry, ...] = ()

    def __post_init__(self) -> None:
        names = [k.name for k in self.keys]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"keys: name {name!r} appears more than once")


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyRing:
    """The keys a service accepts, looked up by their hash."""

    def __init__(self, entries: tuple[KeyEntry, ...]) -> None:
        self._by_digest = {e.sha256: e for e in entries}

    @classmethod
    def load(cls, path: str | Path) -> KeyRing:
        return cls(read_keys(path).keys)

    def holder(self, key: str) -> KeyEntry | None:
        """The entry of `key`, or None for a key not in the ring."""
        return self._by_digest.get(digest(key))


def read_keys(path: str | Path) -> KeysFile:
    """A `solvent.keys/1` file; bad input is an InputError naming the field."""
    source = str(path)
    try:
        return msgspec.json.decode(read_bytes(source), type=KeysFile)
    except msgspec.ValidationError as exc:
        raise InputError(source, *split_validation_message(str(exc))) from None
    except msgspec.DecodeError as exc:
        raise InputError(source, "", f"not valid JSON ({exc})") from None


def add_key(path: str | Path, name: str, role: Role, account: str | None = None) -> str:
    """Make a key for `name`, add its hash to the keys file (created if missing), and return the key itself (the
    only time it is seen)."""
    current = read_keys(path) if Path(path).exists() else KeysFile()
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    try:
        entry = msgspec.convert({"name": name, "role": role, "sha256": digest(key), "account": account}, type=KeyEntry)
        updated = KeysFile(keys=(*current.keys, entry))
    except (msgspec.ValidationError, ValueError) as exc:
        raise InputError(str(path), *split_validation_message(str(exc))) from None
    if any(k.name == name for k in current.keys):
        raise InputError(str(path), "keys", f"name {name!r} appears more than once")
    with atomic_output(path) as tmp:
        Path(tmp).write_bytes(msgspec.json.format(msgspec.json.encode(updated), indent=2) + b"\n")
    return key
