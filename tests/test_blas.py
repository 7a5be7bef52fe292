"""Issue 14 item 4: `one_blas_thread` runs the risk context's BLAS products on one thread, and restores the count."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import ThreadpoolController

from solvent._blas import one_blas_thread


def test_one_blas_thread_sets_one_thread_then_restores_the_count() -> None:
    controller = ThreadpoolController().select(user_api="blas")
    if not controller.lib_controllers:
        pytest.skip("no BLAS library found in this process: one_blas_thread changes nothing")

    def get() -> int:
        return int(controller.info()[0]["num_threads"])

    before = get()
    controller.limit(limits=2)  # kept: restored by hand below
    try:
        with one_blas_thread():
            assert get() == 1
        assert get() == 2
        with pytest.raises(RuntimeError), one_blas_thread():
            raise RuntimeError
        assert get() == 2
        first, second = one_blas_thread(), one_blas_thread()  # two threads' blocks, overlapping
        first.__enter__()
        second.__enter__()
        first.__exit__(None, None, None)  # the first to leave does not restore the count under the other
        assert get() == 1
        second.__exit__(None, None, None)
        assert get() == 2
    finally:
        controller.limit(limits=before)


def test_a_product_on_one_thread_has_the_bits_of_one_on_several() -> None:
    """The Monte Carlo's correlated draws on 200 assets (256 x 200 x 200, past OpenBLAS' threading threshold) and a
    covariance of their shape: the same bits with one BLAS thread as with the default count."""
    rng = np.random.default_rng(7)
    draws, factor = rng.standard_normal((256, 200)), np.tril(rng.standard_normal((200, 200)))
    threaded = draws @ factor.T, np.cov(draws, rowvar=False)
    with one_blas_thread():
        single = draws @ factor.T, np.cov(draws, rowvar=False)
    for want, got in zip(threaded, single, strict=True):
        np.testing.assert_array_equal(got.view(np.int64), want.view(np.int64))
