"""cli/collector.py: a one-shot command runs with the cyclic collector paused and freezes what it leaves, returning
or raising; the collector's state before it is restored."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from solvent.cli.collector import one_shot


@pytest.fixture(autouse=True)
def collector_restored() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    gc.unfreeze()
    if enabled:
        gc.enable()
    else:
        gc.disable()


def test_paused_while_it_runs_frozen_and_enabled_after() -> None:
    seen = []

    @one_shot
    def command(x: int) -> int:
        seen.append(gc.isenabled())
        return x + 1

    gc.enable()
    gc.unfreeze()
    assert command(1) == 2
    assert seen == [False]
    assert gc.isenabled()
    assert gc.get_freeze_count() > 0


def test_an_error_still_restores_and_freezes() -> None:
    @one_shot
    def command() -> None:
        raise ValueError("bad input")

    gc.enable()
    gc.unfreeze()
    with pytest.raises(ValueError, match="bad input"):
        command()
    assert gc.isenabled()
    assert gc.get_freeze_count() > 0


def test_a_collector_paused_before_stays_paused() -> None:
    gc.disable()
    one_shot(lambda: None)()
    assert not gc.isenabled()
