"""The service's Prometheus metrics, in a registry of their own (no global state): counters and the batch
latency histogram are updated as batches are ingested; the venue's gauges (accounts by status, oracle status per
asset, the insurance fund) are read at each scrape from the view the venue published after its last batch."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from solvent._extras import requires_extra
from solvent.market.oracle import OracleStatus
from solvent.service.access import VenueAccess
from solvent.service.view import STATUSES
from solvent.stream import events as ev

with requires_extra("service"):
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
    from prometheus_client.core import GaugeMetricFamily, Metric
    from prometheus_client.registry import Collector

#: Batch latency buckets, seconds: a tick on a small book takes well under a millisecond, a re-margin of
#: every account of a large one a good part of a second.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class _VenueGauges(Collector):
    """The venue's state as of its last batch, at scrape time."""

    def __init__(self, venue: VenueAccess) -> None:
        self.venue = venue

    def collect(self) -> Iterator[Metric]:
        view = self.venue.view
        counts = np.bincount(view.status.astype(np.int64), minlength=len(STATUSES))
        oracle = [(asset, OracleStatus[name]) for asset, name in view.venue["oracle_status"].items()]
        fund = view.venue["insurance_fund"]
        accounts = GaugeMetricFamily("solvent_accounts", "Accounts by status", labels=["status"])
        for name, count in zip(STATUSES, counts.tolist(), strict=False):
            accounts.add_metric([name], count)
        yield accounts
        status = GaugeMetricFamily(
            "solvent_oracle_status",
            "Oracle status per asset (1 for the asset's current status)",
            labels=["asset", "status"],
        )
        for asset, code in oracle:
            for s in OracleStatus:
                status.add_metric([asset, s.name], float(s == code))
        yield status
        yield GaugeMetricFamily("solvent_insurance_fund_usd", "The insurance fund, USD", value=fund)


class ServiceMetrics:
    """The metrics of one service."""

    def __init__(self, venue: VenueAccess) -> None:
        self.registry = CollectorRegistry()
        self.records = Counter(
            "solvent_records_ingested", "Feed records ingested (applied)", ["type"], registry=self.registry
        )
        self.events = Counter("solvent_events", "Events published", ["type"], registry=self.registry)
        self.batch_seconds = Histogram(
            "solvent_batch_seconds", "Time to ingest one batch", buckets=LATENCY_BUCKETS, registry=self.registry
        )
        self.registry.register(_VenueGauges(venue))

    def batch(self, records: Sequence[object], events: Sequence[ev.Event], seconds: float) -> None:
        """Count one ingested batch: its applied records, its events, its latency."""
        for record in records:
            self.records.labels(type(record).__struct_config__.tag).inc()  # type: ignore[attr-defined]
        for event in events:
            self.events.labels(type(event).__name__).inc()
        self.batch_seconds.observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
