"""``numba.njit`` for kernels that allocate nothing: compiled without reference counting.

Numba counts references to the arrays a compiled function holds, with atomic increments.
Its pruning removes most of them, but not all: an array passed on to an inlined helper, or to
a helper called in a loop, is taken and released once per call. In the JSON number readers
that was three quarters of the parse time (several atomic pairs per number, 29 → 7 µs for a
batch of 100 × 5 numbers) and in the regression's refit about a tenth (4.6 instead of 5.1 µs
for a five-field device). A kernel that creates no array (and calls none that does) needs no
counting: :func:`no_refcount_kernel` compiles it without (numba's ``_nrt=False``). Same code,
same bits; a kernel that allocates fails to compile with it (a typing error), so a wrong use
cannot pass silently.

``tests/unit/test_jit.py`` checks both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba

__all__ = ["no_refcount_kernel"]

_F = TypeVar("_F", bound=Callable[..., Any])
#: numba's option (not in its typed signature) that turns reference counting off
_NO_REFCOUNTS: dict[str, Any] = {"_nrt": False}


def no_refcount_kernel(inline: bool = False) -> Callable[[_F], _F]:
    """``numba.njit(cache=True, nogil=True)`` without reference counting; ``inline``: into
    its callers (numba's ``inline="always"``)."""
    options = dict(_NO_REFCOUNTS, inline="always") if inline else _NO_REFCOUNTS
    return cast(Callable[[_F], _F], numba.njit(cache=True, nogil=True, **options))
