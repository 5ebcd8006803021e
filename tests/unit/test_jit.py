"""Kernels compiled without reference counting: same results, and no allocation slips in."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import numba
import numpy as np
import pytest
from numpy.typing import NDArray

from core.jit import no_refcount_kernel


@no_refcount_kernel(inline=True)
def _square(x: float) -> float:
    return x * x


def _sum_of_squares(x: NDArray[np.float64]) -> float:
    s = 0.0
    for v in x:
        s += _square(v)
    return s


_without = no_refcount_kernel()(_sum_of_squares)
_counted = cast(Callable[[NDArray[np.float64]], float], numba.njit(_sum_of_squares))


@no_refcount_kernel()
def _allocates(n: int) -> float:
    return float(np.zeros(n).sum())


def test_a_kernel_without_reference_counting_computes_as_numba_does() -> None:
    x = np.random.default_rng(0).normal(size=1000)
    assert _without(x) == _counted(x)
    assert _without(x[::3]) == _counted(x[::3])  # a strided view too
    assert _without(x) == pytest.approx(float(np.sum(x * x)))


def test_a_kernel_that_allocates_does_not_compile() -> None:
    with pytest.raises(numba.core.errors.TypingError):
        _allocates(3)
