"""The synthetic-market generator: reproducibility, its statistics on long samples, fitting it back,
the packaged demo generator and the script that made it."""

from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from solvent.errors import InputError
from solvent.market.history import read_history, write_history
from solvent.market.synthetic import (
    AssetGenerator,
    SyntheticGenerator,
    fit_generator,
    load_generator,
    simulate_returns,
    student_t_innovations,
    synthetic_history,
)

ROOT = Path(__file__).resolve().parents[1]
BITSTAMP = "data/prices/bitstamp_btc_eth_ltc_daily_2014_2020.csv"


def asset(name: str, omega: float, alpha: float, beta: float, dof: float) -> AssetGenerator:
    return AssetGenerator(name=name, omega=omega, alpha=alpha, beta=beta, dof=dof, start_price=100.0, fitted_from=name)


#: Parameters whose innovations have a finite fourth moment ((a+b)^2 + a^2 (kappa - 1) < 1), so that
#: sample variances settle on long samples (the fitted crypto generator's BTC does not: dof ~ 3).
CONTROLLED = SyntheticGenerator(
    schema="solvent.generator/1",
    source="tests",
    assets=(asset("A", 2e-5, 0.05, 0.90, 8.0), asset("B", 4e-5, 0.08, 0.88, 6.0), asset("C", 1e-5, 0.10, 0.80, 10.0)),
    correlation=((1.0, 0.6, 0.3), (0.6, 1.0, 0.5), (0.3, 0.5, 1.0)),
)


@pytest.fixture(scope="module")
def long_sample() -> tuple[np.ndarray, np.ndarray]:
    return simulate_returns(CONTROLLED, 200_000, 2)


# ------------------------------------------------------------------------------- reproducibility


def test_same_seed_same_history_bit_for_bit() -> None:
    first, second = synthetic_history(800, 42), synthetic_history(800, 42)
    assert first.assets == second.assets == ("BTC", "ETH", "SOL")
    np.testing.assert_array_equal(first.timestamps, second.timestamps)
    assert first.closes.tobytes() == second.closes.tobytes()


def test_different_seed_differs() -> None:
    first, second = synthetic_history(800, 42), synthetic_history(800, 43)
    assert not np.any(first.closes[1:] == second.closes[1:])


def test_layout_of_a_history() -> None:
    history = synthetic_history(10, 1, start="2024-02-27")
    assert history.timestamps[0] == np.datetime64("2024-02-27T00:00:00")
    assert history.timestamps[-1] == np.datetime64("2024-03-07T00:00:00")  # 2024 is a leap year
    assert history.timestamps.dtype == np.dtype("datetime64[s]")
    assert history.closes[0].tolist() == [95_000.0, 3_500.0, 180.0]
    assert np.all(np.isfinite(history.closes)) and np.all(history.closes > 0.0)
    returns, _ = simulate_returns(load_generator(), 9, 1)
    np.testing.assert_allclose(history.log_returns(), returns, rtol=1e-9, atol=1e-12)


def test_one_day_is_the_start_prices() -> None:
    assert synthetic_history(1, 5, CONTROLLED).closes.tolist() == [[100.0, 100.0, 100.0]]


@pytest.mark.parametrize("n_days", [0, -3])
def test_rejects_empty_history(n_days: int) -> None:
    with pytest.raises(ValueError, match="n_days"):
        synthetic_history(n_days, 1)


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_history_file_round_trip(tmp_path: Path, suffix: str) -> None:
    history = synthetic_history(300, 9)
    write_history(history, tmp_path / f"h.{suffix}")
    back = read_history(tmp_path / f"h.{suffix}")
    assert back.assets == history.assets
    np.testing.assert_array_equal(back.timestamps, history.timestamps)
    assert back.closes.tobytes() == history.closes.tobytes()


# ---------------------------------------------------------------------------- long-sample statistics


def test_variance_follows_the_garch_recursion(long_sample: tuple[np.ndarray, np.ndarray]) -> None:
    returns, variance = long_sample
    omega = np.array([a.omega for a in CONTROLLED.assets])
    alpha = np.array([a.alpha for a in CONTROLLED.assets])
    beta = np.array([a.beta for a in CONTROLLED.assets])
    np.testing.assert_allclose(variance[0], omega / (1.0 - alpha - beta), rtol=1e-15)
    np.testing.assert_allclose(variance[1:], omega + alpha * returns[:-1] ** 2 + beta * variance[:-1], rtol=1e-15)


def test_unconditional_vol_matches_the_parameters(long_sample: tuple[np.ndarray, np.ndarray]) -> None:
    returns, _ = long_sample
    expected = np.array([a.garch.unconditional_variance for a in CONTROLLED.assets])
    np.testing.assert_allclose(np.std(returns, axis=0), np.sqrt(expected), rtol=0.03)


def test_innovations_are_unit_variance_student_t(long_sample: tuple[np.ndarray, np.ndarray]) -> None:
    returns, variance = long_sample
    shocks = returns / np.sqrt(variance)
    np.testing.assert_allclose(np.var(shocks, axis=0), 1.0, atol=0.02)
    for j, spec in enumerate(CONTROLLED.assets):
        scaled = shocks[:, j] * math.sqrt(spec.dof / (spec.dof - 2.0))
        assert stats.kstest(scaled, "t", args=(spec.dof,)).pvalue > 1e-3, spec.name


def test_rank_correlation_is_the_gaussian_copula_one(long_sample: tuple[np.ndarray, np.ndarray]) -> None:
    """Spearman's rho of a Gaussian copula with correlation r is (6 / pi) arcsin(r / 2)."""
    returns, variance = long_sample
    shocks = returns / np.sqrt(variance)
    ranks = np.argsort(np.argsort(shocks, axis=0), axis=0)
    spearman = np.corrcoef(ranks, rowvar=False)
    expected = 6.0 / np.pi * np.arcsin(np.array(CONTROLLED.correlation) / 2.0)
    np.testing.assert_allclose(spearman, expected, atol=0.01)


def test_student_t_transform_keeps_extreme_normals() -> None:
    """z = +-40 would round Phi(z) to 1 or 0; the lower-tail form keeps the result finite and odd."""
    z = np.array([[-40.0], [-1.0], [0.0], [1.0], [40.0]])
    e = student_t_innovations(z, np.array([4.0]))
    assert np.all(np.isfinite(e)) and np.all(np.diff(e[:, 0]) > 0.0)
    np.testing.assert_allclose(e[::-1], -e, rtol=1e-15)
    expected = stats.t.ppf(stats.norm.cdf(1.0), 4.0) * math.sqrt(0.5)
    assert e[3, 0] == pytest.approx(expected, rel=1e-12)


def test_fit_generator_recovers_the_parameters() -> None:
    history = synthetic_history(20_000, 11, CONTROLLED)
    names = {a.name: a.name for a in CONTROLLED.assets}
    fitted = fit_generator(history, names, dict.fromkeys(names, 1.0), "round trip")
    for truth, got in zip(CONTROLLED.assets, fitted.assets, strict=True):
        assert got.alpha == pytest.approx(truth.alpha, abs=0.02), truth.name
        assert got.beta == pytest.approx(truth.beta, abs=0.04), truth.name
        assert got.dof == pytest.approx(truth.dof, abs=1.5), truth.name
        assert got.garch.unconditional_variance == pytest.approx(truth.garch.unconditional_variance, rel=0.1)
    np.testing.assert_allclose(fitted.correlation, CONTROLLED.correlation, atol=0.03)


def test_fit_generator_rejects_a_shared_column() -> None:
    history = synthetic_history(100, 1, CONTROLLED)
    with pytest.raises(ValueError, match="its own history column"):
        fit_generator(history, {"X": "A", "Y": "A"}, {"X": 1.0, "Y": 1.0}, "bad")


# --------------------------------------------------------------------------- the packaged generator


def test_packaged_generator() -> None:
    generator = load_generator()
    assert generator.schema == "solvent.generator/1"
    assert generator.names == ("BTC", "ETH", "SOL")
    assert [a.fitted_from for a in generator.assets] == ["BTC", "ETH", "LTC"]
    assert "SOL uses LTC's fit as a proxy" in generator.source
    assert "illustrative" in generator.source
    assert [a.start_price for a in generator.assets] == [95_000.0, 3_500.0, 180.0]
    for spec in generator.assets:
        annual = math.sqrt(spec.garch.unconditional_variance * 365.0)
        assert 0.4 < annual < 1.5, spec.name  # crypto-like long-run volatility
        assert 2.0 < spec.dof < 10.0, spec.name  # fat tails
    correlation = np.array(generator.correlation)
    assert np.all(correlation[~np.eye(3, dtype=bool)] > 0.5)


def test_generator_json_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "g.json"
    path.write_bytes(CONTROLLED.to_json())
    assert load_generator(path) == CONTROLLED


def test_script_reproduces_the_packaged_generator(shared_dir: Path, tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("fit_demo_generator", ROOT / "scripts/fit_demo_generator.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "generator.json"
    assert script.main(["fit", str(shared_dir / BITSTAMP), str(out)]) == 0
    made, packaged = load_generator(out), load_generator()
    assert made.source == packaged.source and made.names == packaged.names
    for new, old in zip(made.assets, packaged.assets, strict=True):
        for field in ("omega", "alpha", "beta", "dof", "start_price"):
            assert getattr(new, field) == pytest.approx(getattr(old, field), rel=1e-6), (new.name, field)
    np.testing.assert_allclose(made.correlation, packaged.correlation, rtol=1e-6)


BAD_GENERATORS = [
    pytest.param({"schema": "solvent.generator/2"}, "schema", id="schema"),
    pytest.param({"extra": 1}, "unknown field", id="unknown-field"),
    pytest.param({"asset0": {"beta": 0.96}}, "alpha + beta must be < 1", id="nonstationary"),
    pytest.param({"asset0": {"dof": 2.0}}, "dof", id="dof"),
    pytest.param({"asset0": {"omega": -1.0}}, "omega", id="omega"),
    pytest.param(
        {"correlation": [[1.0, 0.99, 0.0], [0.99, 1.0, 0.99], [0.0, 0.99, 1.0]]}, "positive definite", id="pd"
    ),
    pytest.param({"correlation": [[1.0, 0.5], [0.5, 1.0]]}, "must be 3 x 3", id="shape"),
    pytest.param({"correlation": [[1.0, 0.6, 0.3], [0.5, 1.0, 0.5], [0.3, 0.5, 1.0]]}, "symmetric", id="asym"),
]


@pytest.mark.parametrize(("change", "message"), BAD_GENERATORS)
def test_bad_generator_file(tmp_path: Path, change: dict[str, object], message: str) -> None:
    import msgspec

    document = msgspec.json.decode(CONTROLLED.to_json())
    for key, value in change.items():
        if key == "asset0":
            assert isinstance(value, dict)
            document["assets"][0].update(value)
        else:
            document[key] = value
    path = tmp_path / "g.json"
    path.write_bytes(msgspec.json.encode(document))
    with pytest.raises(InputError, match=re.escape(message)) as info:
        load_generator(path)
    assert str(info.value).startswith(str(path))


def test_missing_generator_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="No such file"):
        load_generator(tmp_path / "absent.json")
