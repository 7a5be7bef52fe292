"""Reading the lab's HTML reports back in tests: their tables (header and cell texts) and figures (alt texts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class Table:
    """One <table>: its header cells and the texts of its body rows."""

    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)

    def row(self, first: str) -> dict[str, str]:
        """The row whose first cell is `first`, keyed by header."""
        found = [r for r in self.rows if r and r[0] == first]
        assert len(found) == 1, f"{len(found)} rows start with {first!r}"
        return dict(zip(self.header, found[0], strict=True))


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tables: list[Table] = []
        self.images: list[str] = []
        self.headings: list[str] = []
        self._cell: list[str] | None = None
        self._heading: list[str] | None = None
        self._in_head = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append(Table())
        elif tag == "thead":
            self._in_head = True
        elif tag == "tr" and not self._in_head:
            self.tables[-1].rows.append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(dict(attrs).get("alt") or "")
        elif tag in ("h1", "h2"):
            self._heading = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "thead":
            self._in_head = False
        elif tag in ("td", "th") and self._cell is not None:
            text = "".join(self._cell).strip()
            table = self.tables[-1]
            (table.header if self._in_head else table.rows[-1]).append(text)
            self._cell = None
        elif tag in ("h1", "h2") and self._heading is not None:
            self.headings.append("".join(self._heading).strip())
            self._heading = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._heading is not None:
            self._heading.append(data)


@dataclass(frozen=True)
class Page:
    """A report page read back: its tables, figures (alt texts) and <h1>/<h2> headings, in page order."""

    tables: list[Table]
    images: list[str]
    headings: list[str]


def read_page(html: str) -> Page:
    reader = _Reader()
    reader.feed(html)
    return Page(reader.tables, reader.images, reader.headings)
