"""The venue beside the stream: `solvent serve` (the HTTP API), `solvent ingest` (a feed file into a durable venue),
`solvent nats-run` (a venue on NATS JetStream) and `solvent keys` (the API's keys)."""

from __future__ import annotations

import click

from solvent.cli.guards import fail_cleanly, stop_on_signals
from solvent.cli.options import (
    accounts_option,
    history_option,
    insurance_fund_option,
    market_option,
    params_option,
    portfolio_option,
    summary_option,
)
from solvent.store.url import DEFAULT_STORE

_AT_THE_START = "solvent.market/1 JSON file: the market at the start."


@click.command("nats-run")
@accounts_option(required=True)
@market_option(_AT_THE_START)
@params_option()
@insurance_fund_option()
@click.option("--nats", "url", default="nats://127.0.0.1:4222", show_default=True, help="The NATS server.")
@click.option("--prefix", default="solvent", show_default=True, help="Subjects <prefix>.feed.> and <prefix>.events.")
@click.option("--durable", default="solvent-venue", show_default=True, help="The feed's durable consumer.")
@fail_cleanly
def nats_run(
    accounts_path: str,
    market_path: str,
    params_path: str | None,
    insurance_fund: float,
    url: str,
    prefix: str,
    durable: str,
) -> None:
    """Run a venue on NATS JetStream: feed records from <prefix>.feed.>, events to <prefix>.events, until SIGTERM."""
    from solvent.convert.inputs import load_params, load_portfolio
    from solvent.formats.io import load_market
    from solvent.service.nats import NatsConfig, serve_nats
    from solvent.service.venue import Venue

    venue = Venue.start(
        load_portfolio(accounts_path),
        load_market(market_path),
        load_params(params_path),
        insurance_fund=insurance_fund,
        portfolio_source=accounts_path,
        market_source=market_path,
    )
    with stop_on_signals() as stop:
        serve_nats(venue, NatsConfig(url=url, prefix=prefix, durable=durable), stop)
    click.echo(f"stopped after input seq {venue.engine.last_input_seq}, event seq {venue.engine.next_seq - 1}")


@click.command()
@click.option("--feed", "feed_path", required=True, help="solvent.feed/1 file (.ndjson or .parquet).")
@click.option("--store", "store_url", required=True, help="memory://, sqlite:///FILE or postgresql://...[?schema=S].")
@accounts_option(required=True)
@market_option(_AT_THE_START)
@params_option()
@history_option()
@insurance_fund_option()
@click.option("--batch", default=100, show_default=True, type=click.IntRange(1), help="Records per ingested batch.")
@click.option("--commit-every", default=1, show_default=True, type=click.IntRange(1), help="Batches per transaction.")
@click.option("--snapshot-every", default=None, type=click.IntRange(1), help="Snapshot the state every N records.")
@summary_option()
@fail_cleanly
def ingest(
    feed_path: str,
    store_url: str,
    accounts_path: str,
    market_path: str,
    params_path: str | None,
    history_path: str | None,
    insurance_fund: float,
    batch: int,
    commit_every: int,
    snapshot_every: int | None,
    summary_path: str,
) -> None:
    """Feed a feed file into a durable venue: restored from its store (or started there), seen records skipped."""
    from rich.console import Console

    from solvent.console import print_stream_summary
    from solvent.convert.inputs import load_params
    from solvent.formats.provenance import provenance_of
    from solvent.service.ingest import IngestFiles, ingest_feed

    files = IngestFiles(
        feed=feed_path,
        store=store_url,
        accounts=accounts_path,
        market=market_path,
        params=params_path,
        history=history_path,
        insurance_fund=insurance_fund,
        batch=batch,
        commit_every=commit_every,
        snapshot_every=snapshot_every,
        summary=summary_path,
        provenance=provenance_of(
            {"feed": feed_path, "accounts": accounts_path, "market": market_path, "params": params_path}
            | {"history": history_path},
            {"margin": load_params(params_path)},
        ),
    )
    print_stream_summary(ingest_feed(files), Console())
    click.echo(f"store: {store_url}\nsummary: {summary_path}")


@click.command()
@portfolio_option("solvent.portfolio/1 file (default: the demo venue).", required=False)
@market_option("solvent.market/1 JSON file (with --portfolio).", required=False)
@params_option()
@history_option()
@click.option(
    "--accounts", "demo_accounts", default=2_000, show_default=True, type=click.IntRange(1), help="Demo size."
)
@insurance_fund_option(1_000_000.0, "USD.")
@click.option(
    "--store", "store_url", default=DEFAULT_STORE, show_default=True, help="memory://, sqlite:///F, postgresql://"
)
@click.option("--keys", "keys_path", default="solvent-keys.json", show_default=True, help="solvent.keys/1 file.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--screen", is_flag=True, help="Health screen: a tick re-margins only the accounts near a boundary.")
@click.option(
    "--batch-threads",
    default=None,
    type=click.IntRange(1),
    help="Threads of a batch's parallel kernels in the engine process [default: every core but one].",
)
@click.option(
    "--engine-niceness",
    default=10,
    show_default=True,
    type=click.IntRange(0, 19),
    help="Niceness added to the engine process: on a busy core, requests before batches.",
)
@fail_cleanly
def serve(
    portfolio_path: str | None,
    market_path: str | None,
    params_path: str | None,
    history_path: str | None,
    demo_accounts: int,
    insurance_fund: float,
    store_url: str,
    keys_path: str,
    host: str,
    port: int,
    screen: bool,
    batch_threads: int | None,
    engine_niceness: int,
) -> None:
    """Run the HTTP API over a venue (docs/service.md). Without --portfolio/--market: the demo venue. A missing
    keys file is created with one operator key, printed once."""
    from solvent.service.build import ServeOptions
    from solvent.service.serve import first_key
    from solvent.service.serve import serve as run_service

    if (portfolio_path is None) != (market_path is None):
        raise click.UsageError("give --portfolio and --market together (or neither, for the demo venue)")
    created = first_key(keys_path)
    if created is not None:
        click.echo(f"created {keys_path} with an operator key (shown once): {created}", err=True)
    options = ServeOptions(
        portfolio=portfolio_path,
        market=market_path,
        params=params_path,
        history=history_path,
        demo_accounts=demo_accounts,
        insurance_fund=insurance_fund,
        store=store_url,
        keys=keys_path,
        host=host,
        port=port,
        screen=screen,
        batch_threads=batch_threads,
        engine_niceness=engine_niceness,
    )
    run_service(options)


@click.group()
def keys() -> None:
    """API keys for `solvent serve` (solvent.keys/1: names, roles, SHA-256 of each key)."""


@keys.command("add")
@click.option("--file", "keys_path", default="solvent-keys.json", show_default=True, help="solvent.keys/1 file.")
@click.option("--name", required=True, help="Who holds the key (shown in logs).")
@click.option("--role", type=click.Choice(["read", "trader", "feeder", "operator"]), required=True)
@click.option("--account", default=None, help="A trader's account.")
@fail_cleanly
def keys_add(keys_path: str, name: str, role: str, account: str | None) -> None:
    """Make a key, store its hash, print the key (the only time it is shown)."""
    from solvent.service.auth import Role, add_key

    click.echo(add_key(keys_path, name, Role(role), account))
