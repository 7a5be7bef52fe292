"""The dashboard's numbers (`GET /dashboard/data`): venue equity against requirement, accounts by health bucket,
each factor's share of total IM, the riskiest accounts with their breakdown, oracle status per asset. The page
itself (dashboard.html, served at /dashboard) only fetches and draws them, and follows the event stream."""

from __future__ import annotations

from importlib.resources import files
from typing import Any, Final

import numpy as np

from solvent.convert.results import account_document
from solvent.market.oracle import OracleStatus
from solvent.service.venue import Venue
from solvent.service.view import STATUSES

#: Health (equity / MM) buckets: their upper edges; an account without MM is "no MM".
HEALTH_EDGES: Final = (1.0, 1.5, 2.0, 5.0, np.inf)
HEALTH_LABELS: Final = ("< 1", "1-1.5", "1.5-2", "2-5", ">= 5")


def page() -> str:
    """The dashboard's HTML."""
    return files("solvent.service").joinpath("dashboard.html").read_text(encoding="utf-8")


def dashboard_data(venue: Venue, top: int = 10) -> dict[str, Any]:
    """The dashboard's numbers, read under the venue's lock (every account margined once, for the factor shares)."""
    with venue.lock:
        engine = venue.engine
        f = engine.figures
        result = engine.margin_now()
        oracle = {a: OracleStatus(int(s)).name for a, s in zip(engine.market.assets, engine.market.status, strict=True)}
        last_event = engine.next_seq - 1
        status = f.status.copy()
    has_mm = result.mm > 0.0
    health = np.where(has_mm, result.equity / np.where(has_mm, result.mm, 1.0), np.inf)
    bucket = np.searchsorted(np.array(HEALTH_EDGES), health[has_mm], side="right")
    counts = np.bincount(np.minimum(bucket, len(HEALTH_LABELS) - 1), minlength=len(HEALTH_LABELS))
    im_total = float(result.im.sum())
    riskiest = np.flatnonzero(has_mm)[np.argsort(health[has_mm], kind="stable")[:top]]
    return {
        "last_event_seq": last_event,
        "equity": float(result.equity.sum()),
        "im": im_total,
        "mm": float(result.mm.sum()),
        "health_buckets": {
            **dict(zip(HEALTH_LABELS, counts.tolist(), strict=True)),
            "no MM": int(np.count_nonzero(~has_mm)),
        },
        "accounts_by_status": dict(
            zip(STATUSES, np.bincount(status.astype(np.int64), minlength=len(STATUSES)).tolist(), strict=False)
        ),
        "factor_share": {
            name: float(values.sum()) / im_total if im_total > 0.0 else 0.0 for name, values in result.terms.items()
        },
        "riskiest": [account_document(result, int(n)) for n in riskiest],
        "oracle_status": oracle,
    }
