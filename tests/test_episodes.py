"""The crash library (issue 5, item 3): the data, the joint shocks, the calibrated paths and their feeds.

The expected figures are written here with their sources (../shared/REFERENCES.md, "Crash episodes"), not read
back from the JSON: a changed figure in the data fails its row.
"""

from __future__ import annotations

import itertools
import math
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from solvent.errors import InputError
from solvent.lab.episodes import (
    Episode,
    EpisodePath,
    episode_feed,
    episode_path,
    episode_shock,
    load_crashes,
    load_episode,
)
from solvent.stream.feed import DepthChange, Quote, VolChange
from solvent.stream.feedio import read_feed, write_feed

START = datetime(2020, 3, 12, tzinfo=UTC)
SEED = 20200312

# (episode, asset, change at the extreme, from_price, to_price, source)
FIGURES = [
    ("2020-03-12", "BTC", -0.388, None, None, "Coinbase BTC-USD daily candles, close to close"),
    ("2020-03-12", "ETH", -0.438, None, None, "Bitstamp ETH-USD daily candles, close to close"),
    ("2021-05-19", "BTC", -0.30, None, None, "exchange daily candles, open to low"),
    ("2022-05-luna", "UST", -0.70, 1.0, 0.30, "Nansen and Kaiko notes: UST to $0.30"),
    ("2022-06-steth", "STETH", -0.06, 1.0, 0.94, "Nansen/Kaiko notes: stETH/ETH about 0.94 (approximate)"),
    ("2022-11-ftx", "FTT", -0.8582, 22.0, 3.12, "Nansen and Kaiko notes: FTT $22 -> $3.12"),
    ("2023-03-usdc", "USDC", -0.12, 1.0, 0.88, "The Block: USDC at $0.88"),
    ("2024-08-05", "BTC", -0.156, None, None, "exchange daily candles, open to low"),
    ("2025-10-10", "BTC", -0.145, 122_574.0, 104_783.0, "CoinShares weekly fund flows"),
    ("2025-10-10", "ETH", -0.122, None, None, "CoinShares weekly fund flows"),
    ("2022-10-mango", "MNGO", 22.947, 0.038, 0.91, "Mango's and Solidus Labs' accounts"),
]
EPISODES = sorted({row[0] for row in FIGURES})
MOVES = [(row[0], row[1]) for row in FIGURES]


def _path(episode_id: str, step: float = 60.0, seed: int = SEED) -> EpisodePath:
    episode = load_episode(episode_id)
    names = [m.asset for m in episode.moves]
    return episode_path(episode, names, dict.fromkeys(names, 100.0), step, seed)


# ------------------------------------------------------------------------------------------------ data


def test_packaged_library_has_every_episode_of_the_issue() -> None:
    assert sorted(load_crashes().ids) == EPISODES


@pytest.mark.parametrize(("episode_id", "asset", "change", "from_price", "to_price", "source"), FIGURES)
def test_episode_figures(
    episode_id: str, asset: str, change: float, from_price: float | None, to_price: float | None, source: str
) -> None:
    move = load_episode(episode_id).move(asset)
    assert move is not None, source
    assert move.change == change
    assert (move.from_price, move.to_price) == (from_price, to_price)
    expected_ratio = 1.0 + change if to_price is None or from_price is None else to_price / from_price
    assert move.ratio == expected_ratio


def test_black_thursday_correlation_and_dispersion() -> None:
    # Coinbase/Bitstamp daily candles (BTC-ETH correlation 0.82 -> 0.98); exchange lows 10.8% apart.
    episode = load_episode("2020-03-12")
    assert episode.correlation is not None and episode.oracle is not None
    assert (episode.correlation.before, episode.correlation.during, episode.correlation.assumed) == (0.82, 0.98, False)
    assert (episode.oracle.kind, episode.oracle.dispersion) == ("dispersion", 0.108)


def test_ftx_depth_and_october_2025_liquidations() -> None:
    # Kaiko: BTC depth -57% on one major venue after 5 Nov 2022; about $19B liquidated on 10 Oct 2025.
    depth = load_episode("2022-11-ftx").depth_of("BTC")
    assert depth is not None and depth.floor == pytest.approx(1.0 - 0.57, abs=1e-15) and not depth.scale_assumed
    assert load_episode("2025-10-10").liquidations_usd == 19e9


def test_mango_is_a_pump_on_every_source() -> None:
    oracle = load_episode("2022-10-mango").oracle
    assert oracle is not None and (oracle.kind, oracle.scope, oracle.assets) == ("pump", "all", ("MNGO",))


def test_unsourced_durations_are_marked_assumed() -> None:
    # Daily candles give no time of day: close-to-close and open-to-low moves take the 24 h default, marked.
    for episode_id, asset in [("2020-03-12", "BTC"), ("2021-05-19", "BTC"), ("2024-08-05", "BTC")]:
        move = load_episode(episode_id).move(asset)
        assert move is not None and (move.hours, move.hours_assumed) == (24.0, True)


def test_round_trip(tmp_path: Path) -> None:
    library = load_crashes()
    path = tmp_path / "crashes.json"
    path.write_bytes(library.to_json())
    assert load_crashes(path) == library


def _edit(document: dict[str, Any], where: str, value: Any) -> None:
    """Set document[where] ("episodes.0.moves.1.change"); value DELETE removes the key."""
    *parents, last = where.split(".")
    node: Any = document
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is DELETE:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


DELETE = object()
BAD_DOCUMENTS = [
    ("schema", "solvent.crashes/2", "schema"),
    ("surprise", 1, "surprise: unknown field"),
    ("episodes.0.sources", [], "episodes[0].sources: at least one source"),
    ("episodes.0.name", DELETE, "episodes[0].name: required field is missing"),
    ("episodes.0.moves.0.change", -1.0, "episodes[0].moves[0].change: a price cannot fall"),
    ("episodes.0.moves.0.shape", "pump", "episodes[0].moves[0].change: a pump rises"),
    ("episodes.0.moves.0.hours", 0.0, "episodes[0].moves[0].hours"),
    ("episodes.0.correlation.during", 1.0, "episodes[0].correlation.during"),
    ("episodes.0.market_asset", "SOL", "episodes[0].market_asset: 'SOL' must name a move"),
    ("episodes.0.oracle.dispersion", None, "episodes[0].oracle.dispersion: given exactly when"),
    ("episodes.1.id", "2020-03-12", "episodes: id '2020-03-12' appears more than once"),
    ("episodes.2.moves.0.to_price", 0.5, "episodes[2].moves[0].change: -0.7 disagrees"),
    ("episodes.2.moves.0.end_change", DELETE, "episodes[2].moves[0].end_change: required for a depeg"),
    ("episodes.4.depth.0.knots", [[48.0, 0.0]], "episodes[4].depth[0].knots[0]"),
]


@pytest.mark.parametrize(("where", "value", "message"), BAD_DOCUMENTS)
def test_bad_document_is_refused_naming_the_field(tmp_path: Path, where: str, value: Any, message: str) -> None:
    document = msgspec.json.decode(load_crashes().to_json())
    assert document["episodes"][2]["id"] == "2022-05-luna" and document["episodes"][4]["id"] == "2022-11-ftx"
    _edit(document, where, value)
    path = tmp_path / "crashes.json"
    path.write_bytes(msgspec.json.encode(document))
    with pytest.raises(InputError, match=re.escape(message)) as info:
        load_crashes(path)
    assert str(info.value).startswith(str(path))


# ---------------------------------------------------------------------------------------------- shocks


def test_unnamed_assets_follow_the_market_or_stay_untouched() -> None:
    shock = episode_shock(load_episode("2020-03-12"), ["BTC", "ETH", "SOL", "USDC"])
    assert shock.role == ("named", "named", "follows", "untouched")
    np.testing.assert_array_equal(shock.price_move, [-0.388, -0.438, -0.388, 0.0])
    assert shock.correlation[0, 1] == shock.correlation[0, 2] == shock.correlation[1, 2] == 0.98
    assert shock.correlation[3, :3].tolist() == [0.0, 0.0, 0.0]
    assert shock.oracle == ("dispersion", "dispersion", "dispersion", "none")
    # An idiosyncratic episode moves only its own asset: FTX leaves BTC's price alone but thins its book 57%.
    ftx = episode_shock(load_episode("2022-11-ftx"), ["FTT", "BTC"])
    assert ftx.role == ("named", "untouched")
    np.testing.assert_array_equal(ftx.price_move, [3.12 / 22.0 - 1.0, 0.0])
    np.testing.assert_allclose(ftx.depth_scale, [1.0, 0.43], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(ftx.correlation, np.eye(2))


def test_shock_arrays_are_read_only() -> None:
    shock = episode_shock(load_episode("2024-08-05"), ["BTC"])
    with pytest.raises(ValueError, match="read-only"):
        shock.price_move[0] = 0.0


# ----------------------------------------------------------------------------------------------- paths


@pytest.mark.parametrize(("episode_id", "asset"), MOVES)
def test_path_starts_at_the_start_and_hits_the_figure(episode_id: str, asset: str) -> None:
    path = _path(episode_id, step=10.0)
    j = path.assets.index(asset)
    move = load_episode(episode_id).move(asset)
    assert move is not None
    assert path.prices[0, j] == 100.0
    k = int(path.headline_index[j])
    assert path.times[k] == pytest.approx(move.hours * 3600.0, abs=5.0)  # knots rounded to the 10 s step
    assert path.prices[k, j] / 100.0 - 1.0 == pytest.approx(move.ratio - 1.0, rel=1e-12, abs=0.0)
    assert path.prices[-1, j] / 100.0 == pytest.approx(move.end_ratio, rel=1e-12, abs=0.0)


def test_pump_rises_and_comes_back_and_depeg_recovers_partly() -> None:
    mango = _path("2022-10-mango", step=10.0).prices[:, 0]
    assert mango.argmax() == 90 and mango.max() == pytest.approx(100.0 * 0.91 / 0.038, rel=1e-12)  # at 15 min
    usdc = _path("2023-03-usdc").prices[:, 0]
    assert usdc[1440] == pytest.approx(88.0, rel=1e-12) and usdc[-1] == pytest.approx(99.0, rel=1e-12)


def test_black_thursday_log_returns_correlate_at_098() -> None:
    # 8,640 ten-second log returns over the 24 h fall. Fisher: atanh(r) has standard error 1/sqrt(n - 3) = 0.0108;
    # 4 standard errors around atanh(0.98) = 2.298 allow r in [0.9786, 0.9813]. The bridge only removes each
    # series' mean increment, which the sample correlation removes anyway.
    path = _path("2020-03-12", step=10.0)
    returns = np.diff(np.log(path.prices[: int(path.headline_index[0]) + 1]), axis=0)
    n = returns.shape[0]
    assert n == 8640
    r = np.corrcoef(returns, rowvar=False)[0, 1]
    assert abs(math.atanh(r) - math.atanh(0.98)) < 4.0 / math.sqrt(n - 3)


def test_same_seed_same_path_different_seed_different_path() -> None:
    first, again, other = _path("2025-10-10"), _path("2025-10-10"), _path("2025-10-10", seed=SEED + 1)
    assert np.array_equal(first.prices, again.prices) and np.array_equal(first.depth, again.depth)
    assert not np.array_equal(first.prices, other.prices)
    assert np.array_equal(first.prices[first.headline_index, [0, 1]], other.prices[other.headline_index, [0, 1]])


def test_depth_profile_reaches_its_floor() -> None:
    # Kaiko: BTC depth -57% on one venue (FTX episode, reached over 48 h, assumed); "near empty" in October 2025.
    episode = load_episode("2022-11-ftx")
    path = episode_path(episode, ["FTT", "BTC"], {"FTT": 22.0, "BTC": 20_000.0}, 60.0, SEED)
    assert path.depth[0, 1] == 1.0 and path.depth[-1, 1] == pytest.approx(0.43, abs=1e-15)
    assert np.all(np.diff(path.depth[:, 1]) <= 0.0) and np.all(path.depth[:, 0] == 1.0)


def test_too_coarse_a_step_is_refused() -> None:
    with pytest.raises(ValueError, match=re.escape("step_seconds: 3600.0 s is too coarse for MNGO")):
        _path("2022-10-mango", step=3600.0)


def test_missing_start_price_is_refused() -> None:
    with pytest.raises(ValueError, match=re.escape("start_prices['ETH']")):
        episode_path(load_episode("2020-03-12"), ["BTC", "ETH"], {"BTC": 7900.0}, 60.0, SEED)


# ------------------------------------------------------------------------------------------------ feed


def test_feed_is_ordered_and_complete() -> None:
    path = _path("2020-03-12", step=60.0)
    records = episode_feed(path, ["a", "b", "c"], start_time=START, start_seq=7)
    seqs = [r.seq for r in records]
    assert seqs == list(range(7, 7 + len(records)))
    assert all(later.time >= earlier.time for earlier, later in itertools.pairwise(records))
    quotes = [r for r in records if isinstance(r, Quote)]
    assert len(quotes) == 1440 * 2 * 3 and records[0].time == datetime(2020, 3, 12, 0, 1, tzinfo=UTC)


@pytest.mark.parametrize("suffix", [".ndjson", ".parquet"])
def test_feed_round_trips_through_feedio(tmp_path: Path, suffix: str) -> None:
    path = _path("2025-10-10", step=60.0)
    records = episode_feed(path, ["a", "b"], start_time=START, vol_changes=True)
    assert isinstance(records[0], VolChange) and records[0].vol == 1.5
    file = tmp_path / f"feed{suffix}"
    write_feed(file, records)
    assert list(read_feed(file)) == records


def test_feed_sends_every_depth_floor_exactly() -> None:
    records = episode_feed(_path("2025-10-10"), start_time=START)
    scales = [r.scale for r in records if isinstance(r, DepthChange) and r.asset == "BTC"]
    assert scales and min(scales) == 0.05 and scales == sorted(scales, reverse=True)


def test_sources_show_the_dispersion_at_the_trough() -> None:
    # Exchange lows 10.8% apart on 12 March 2020: the sources' quotes at the trough span 1.108 x before their
    # noise (sd 0.0005 each, so the span is within 0.005 of it).
    path = _path("2020-03-12")
    records = episode_feed(path, ["a", "b", "c", "d"], start_time=START)
    trough = START.replace(day=13)
    btc = [r.price for r in records if isinstance(r, Quote) and r.time == trough and r.asset == "BTC"]
    assert len(btc) == 4 and max(btc) / min(btc) - 1.0 == pytest.approx(0.108, abs=0.005)


def test_pump_on_every_source_and_on_one_source() -> None:
    episode = load_episode("2022-10-mango")
    peak = START.replace(minute=15)

    def peak_quotes(e: Episode) -> list[float]:
        path = episode_path(e, ["MNGO"], {"MNGO": 0.038}, 10.0, SEED)
        records = episode_feed(path, ["a", "b", "c"], start_time=START)
        return [r.price for r in records if isinstance(r, Quote) and r.time == peak]

    assert peak_quotes(episode) == pytest.approx([0.91] * 3, rel=0.003)
    assert episode.oracle is not None
    one = msgspec.structs.replace(episode, oracle=msgspec.structs.replace(episode.oracle, scope="one"))
    a, b, c = peak_quotes(one)
    assert a == pytest.approx(0.91, rel=0.003) and b == pytest.approx(0.038, rel=0.01)
    assert c == pytest.approx(0.038, rel=0.01)
