"""docs/formats.md on the stream's files: the events example is valid `solvent.events/1` (the decoder, the
committed JSON Schema and a byte-for-byte round trip agree), and the tables name every field the code has."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, get_args

import jsonschema
import msgspec
import pytest

import solvent
from solvent.stream.engine import StreamEngine
from solvent.stream.events import Event, decode_events, encode_events
from solvent.stream.feed import FeedRecord

ROOT = Path(__file__).resolve().parents[1]
FORMATS = ROOT / "docs" / "formats.md"
EVENTS_SCHEMA = ROOT / "docs" / "schemas" / "solvent.events-1.schema.json"


def docs_text() -> str:
    return FORMATS.read_text(encoding="utf-8")


def event_blocks() -> list[str]:
    """The ```ndjson-events blocks of docs/formats.md (```ndjson blocks are feeds: tests/test_feedio.py)."""
    return re.findall(r"^```ndjson-events\n(.*?)^```$", docs_text(), flags=re.MULTILINE | re.DOTALL)


def section(title: str) -> str:
    """The text of one `## ` section of docs/formats.md, up to the next one."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", docs_text(), flags=re.MULTILINE | re.DOTALL)
    assert match is not None, f"docs/formats.md has no section {title!r}"
    return match.group(1)


def events_validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(EVENTS_SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def lines_of(block: str) -> list[str]:
    return [line for line in block.splitlines() if line.strip()]


# ------------------------------------------------------------------------------------ the events example


def test_docs_have_an_events_example() -> None:
    assert len(event_blocks()) >= 1


@pytest.mark.parametrize("block", event_blocks())
def test_events_example_decodes(block: str) -> None:
    events = decode_events(block.encode())
    assert len(events) == len(lines_of(block))
    assert all(isinstance(event, get_args(Event)) for event in events)


@pytest.mark.parametrize("block", event_blocks())
def test_events_example_round_trips_byte_for_byte(block: str) -> None:
    assert encode_events(decode_events(block.encode())) == block.encode()


@pytest.mark.parametrize(
    "line", [pytest.param(line, id=f"line{n}") for block in event_blocks() for n, line in enumerate(lines_of(block))]
)
def test_events_example_validates_against_the_json_schema(line: str) -> None:
    assert [e.message for e in events_validator().iter_errors(json.loads(line))] == []


@pytest.mark.parametrize("block", event_blocks())
def test_events_example_numbers_events_without_gaps(block: str) -> None:
    assert [event.seq for event in decode_events(block.encode())] == list(range(len(lines_of(block))))


def _event(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {"type": "LossUnresolved", "seq": 0, "time": "2026-11-25T00:00:00Z", "cause": 3}
    return {**document, "account": "acct-1", "amount": 12.5, **changes}


LIQUIDATION: dict[str, Any] = {
    **{k: v for k, v in _event(type="LiquidationExecuted").items() if k != "amount"},
    **{"instrument": "BTC-PERP", "quantity": -0.5, "price": 76000.0, "fee": 190.0, "reason": "maintenance"},
}


@pytest.mark.parametrize("document", [pytest.param(_event(), id="loss"), pytest.param(LIQUIDATION, id="liquidation")])
def test_json_schema_accepts_an_event(document: dict[str, Any]) -> None:
    assert events_validator().is_valid(document)


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(_event(type="AccountExploded"), id="unknown-type"),
        pytest.param(_event(colour="red"), id="unknown-field"),
        pytest.param(_event(amount="12.5"), id="amount-text"),
        pytest.param({k: v for k, v in _event().items() if k != "cause"}, id="missing-cause"),
        pytest.param({**LIQUIDATION, "reason": "boredom"}, id="unknown-liquidation-reason"),
    ],
)
def test_json_schema_rejects_a_bad_event(document: dict[str, Any]) -> None:
    assert not events_validator().is_valid(document)


# ----------------------------------------------------------------------- the tables name every field


def _tags(union: Any) -> list[tuple[str, type[msgspec.Struct]]]:
    return [(kind.__struct_config__.tag, kind) for kind in get_args(union)]


@pytest.mark.parametrize(("tag", "kind"), [pytest.param(tag, kind, id=tag) for tag, kind in _tags(Event)])
def test_events_table_lists_every_event_and_field(tag: str, kind: type[msgspec.Struct]) -> None:
    text = section("`solvent.events/1`")
    row = next((line for line in text.splitlines() if line.startswith(f"| `{tag}` |")), None)
    assert row is not None, f"no row for {tag}"
    own = [f.name for f in msgspec.structs.fields(kind) if f.name not in {"seq", "time", "cause"}]
    assert [name for name in own if f"`{name}`" not in row] == []


@pytest.mark.parametrize(("tag", "kind"), [pytest.param(tag, kind, id=tag) for tag, kind in _tags(FeedRecord)])
def test_feed_section_lists_every_record_and_field(tag: str, kind: type[msgspec.Struct]) -> None:
    text = section("`solvent.feed/1`")
    table = re.search(rf"^\*\*`{tag}`\*\*.*?\n\n(\|.*?)\n\n", text, flags=re.MULTILINE | re.DOTALL)
    assert table is not None, f"no table for {tag}"
    own = [f.name for f in msgspec.structs.fields(kind) if f.name not in {"seq", "time"}]
    assert [name for name in own if f"| `{name}` |" not in table.group(1)] == []


def test_summary_table_lists_every_key() -> None:
    engine = StreamEngine.start(
        solvent.load_portfolio(ROOT / "examples" / "portfolio.json"),
        solvent.load_market(ROOT / "examples" / "market.json"),
    )
    keys = [*engine.summary(), "feed", "block_ms"]  # replay.py adds the last two
    text = section("`solvent.stream-summary/1`")
    assert [key for key in keys if f"| `{key}` |" not in text] == []
