"""JSON arrays of numbers → numpy arrays, in numba, exactly as Python would read them.

Telemetry spends most of its decoding time turning the JSON numbers of ``t`` and ``values``
into Python floats and those into numpy arrays (pydantic, msgspec and orjson all build a
Python float per number; numpy then converts them one by one). These kernels read the raw
bytes of such an array straight into a float64 array instead.

They are a fast path, never the judge: any input they are not certain about (a number with
more than 15–16 significant digits or an exponent beyond ±22, which cannot be converted
exactly by one multiplication; a string, a nested level too deep, a ragged row) makes them
return a failure code, and the caller decodes that payload the slow, general way. Numbers
they accept convert exactly (Clinger's fast path: an integer mantissa below 2**53 times or
divided by an exact power of ten is one correctly rounded IEEE operation), so they give the
very bits ``float()`` gives.

>>> import numpy as np
>>> out = np.empty(4)
>>> parse_number_list(np.frombuffer(b"[1700000000.0, 1e3,-0.25,7]", np.uint8), out)
4
>>> out.tolist()
[1700000000.0, 1000.0, -0.25, 7.0]
>>> rows = np.empty((2, 2))
>>> parse_number_rows(np.frombuffer(b"[[7.1, null], [7.3, 61]]", np.uint8), rows)
0
>>> rows.tolist()
[[7.1, nan], [7.3, 61.0]]
>>> parse_number_rows(np.frombuffer(b"[[7.1], [7.3, 61]]", np.uint8), rows)  # ragged
-1
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numpy.typing import NDArray

from core.jit import no_refcount_kernel

__all__ = ["FAILED", "nesting_depth", "parse_number_list", "parse_number_rows"]

#: what the kernels return for input they leave to the general decoder
FAILED = -1

_MAX_EXACT_MANTISSA = 2**53
_POW10 = np.array([10.0**e for e in range(23)])  # every one exact in float64

# the readers allocate nothing: compiled without reference counting (core/jit.py)


@no_refcount_kernel(inline=True)
def _skip_ws(buf: NDArray[np.uint8], i: int) -> int:
    n = buf.shape[0]
    while i < n:
        c = buf[i]
        if c == 32 or c == 10 or c == 13 or c == 9:
            i += 1
        else:
            break
    return i


@no_refcount_kernel(inline=True)
def _number(buf: NDArray[np.uint8], i: int, pow10: NDArray[np.float64]) -> tuple[float, int]:
    """The JSON number at ``i`` and the index after it; index -1 when it is not certain."""
    n = buf.shape[0]
    neg = False
    if i < n and buf[i] == 45:  # '-'
        neg = True
        i += 1
    if i >= n:
        return 0.0, -1
    m = 0
    c = buf[i]
    if c == 48:  # a lone '0' (JSON has no leading zeros)
        i += 1
        if i < n and 48 <= buf[i] <= 57:
            return 0.0, -1
    elif 49 <= c <= 57:
        while i < n and 48 <= buf[i] <= 57:
            m = m * 10 + (buf[i] - 48)
            if m > _MAX_EXACT_MANTISSA:
                return 0.0, -1
            i += 1
    else:
        return 0.0, -1
    exp10 = 0
    fraction_or_exponent = i < n and (buf[i] == 46 or buf[i] == 101 or buf[i] == 69)
    if i < n and buf[i] == 46:  # '.'
        i += 1
        start = i
        while i < n and 48 <= buf[i] <= 57:
            m = m * 10 + (buf[i] - 48)
            if m > _MAX_EXACT_MANTISSA:
                return 0.0, -1
            i += 1
        if i == start:
            return 0.0, -1
        exp10 -= i - start
    if i < n and (buf[i] == 101 or buf[i] == 69):  # 'e' / 'E'
        i += 1
        eneg = False
        if i < n and (buf[i] == 43 or buf[i] == 45):
            eneg = buf[i] == 45
            i += 1
        start = i
        e = 0
        while i < n and 48 <= buf[i] <= 57:
            if e < 100_000:
                e = e * 10 + (buf[i] - 48)
            i += 1
        if i == start:
            return 0.0, -1
        exp10 += -e if eneg else e
    if m == 0:
        # a JSON integer is read as an int first (-0 is 0); -0.0 and -0e0 keep their sign
        value = 0.0
        if not fraction_or_exponent:
            neg = False
    elif 0 <= exp10 <= 22:
        value = float(m) * pow10[exp10]
    elif -22 <= exp10 < 0:
        value = float(m) / pow10[-exp10]
    else:
        return 0.0, -1
    return (-value if neg else value), i


@no_refcount_kernel()
def _parse_list(buf: NDArray[np.uint8], out: NDArray[np.float64],
                pow10: NDArray[np.float64]) -> int:
    n = buf.shape[0]
    i = _skip_ws(buf, 0)
    if i >= n or buf[i] != 91:  # '['
        return -1
    i = _skip_ws(buf, i + 1)
    count = 0
    if i < n and buf[i] == 93:  # ']'
        i += 1
    else:
        while True:
            if count >= out.shape[0]:
                return -1
            value, i = _number(buf, i, pow10)
            if i < 0:
                return -1
            out[count] = value
            count += 1
            i = _skip_ws(buf, i)
            if i >= n:
                return -1
            if buf[i] == 44:  # ','
                i = _skip_ws(buf, i + 1)
            elif buf[i] == 93:
                i += 1
                break
            else:
                return -1
    if _skip_ws(buf, i) != n:
        return -1
    return count


@no_refcount_kernel()
def _parse_rows(buf: NDArray[np.uint8], out: NDArray[np.float64],
                pow10: NDArray[np.float64]) -> int:
    n = buf.shape[0]
    n_rows, k = out.shape
    i = _skip_ws(buf, 0)
    if i >= n or buf[i] != 91:
        return -1
    i = _skip_ws(buf, i + 1)
    r = 0
    if i < n and buf[i] == 93:
        i += 1
    else:
        while True:
            if r >= n_rows or i >= n or buf[i] != 91:
                return -1
            i = _skip_ws(buf, i + 1)
            c = 0
            if i < n and buf[i] == 93:
                i += 1
            else:
                while True:
                    if c >= k or i >= n:
                        return -1
                    if buf[i] == 110:  # 'n'ull
                        if i + 4 > n or buf[i + 1] != 117 or buf[i + 2] != 108 \
                                or buf[i + 3] != 108:
                            return -1
                        out[r, c] = math.nan
                        i += 4
                    else:
                        value, i = _number(buf, i, pow10)
                        if i < 0:
                            return -1
                        out[r, c] = value
                    c += 1
                    i = _skip_ws(buf, i)
                    if i >= n:
                        return -1
                    if buf[i] == 44:
                        i = _skip_ws(buf, i + 1)
                    elif buf[i] == 93:
                        i += 1
                        break
                    else:
                        return -1
            if c != k:
                return -1
            r += 1
            i = _skip_ws(buf, i)
            if i >= n:
                return -1
            if buf[i] == 44:
                i = _skip_ws(buf, i + 1)
            elif buf[i] == 93:
                i += 1
                break
            else:
                return -1
    if _skip_ws(buf, i) != n or r != n_rows:
        return -1
    return 0


@numba.njit(cache=True, nogil=True)
def _nesting_depth(buf: NDArray[np.uint8], limit: int) -> int:
    n = buf.shape[0]
    depth = 0
    deepest = 0
    in_string = False
    i = 0
    while i < n:
        c = buf[i]
        if in_string:
            if c == 92:  # a backslash escapes the next byte (\" does not end the string)
                i += 1
            elif c == 34:
                in_string = False
        elif c == 34:  # '"'
            in_string = True
        elif c == 91 or c == 123:  # '[' '{'
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif c == 93 or c == 125:  # ']' '}'
            depth -= 1
        i += 1
    return deepest


def nesting_depth(buf: NDArray[np.uint8], limit: int = 2**31) -> int:
    """How deep the arrays and objects of the JSON text in ``buf`` nest (0: a bare scalar).

    Brackets inside strings do not count. The scan stops as soon as the depth exceeds
    ``limit`` (it then returns ``limit + 1``), so a hostile payload costs one pass at most.
    It does not validate: unbalanced or otherwise broken JSON still gets a number.

    >>> nesting_depth(np.frombuffer(b'{"a": [[1], "]]]["], "b": {}}', np.uint8))
    3
    >>> nesting_depth(np.frombuffer(b"[" * 5000, np.uint8), limit=32)
    33
    """
    return int(_nesting_depth(buf, limit))


def parse_number_list(buf: NDArray[np.uint8], out: NDArray[np.float64]) -> int:
    """Read the JSON array of numbers in ``buf`` into ``out``; how many, or :data:`FAILED`.

    ``null`` is not a number here (a timestamp cannot be missing): it fails.
    """
    return int(_parse_list(buf, out, _POW10))


def parse_number_rows(buf: NDArray[np.uint8], out: NDArray[np.float64]) -> int:
    """Read a JSON array of ``out.shape[0]`` rows of ``out.shape[1]`` numbers or ``null``.

    ``null`` becomes NaN. Returns 0, or :data:`FAILED` for anything else (other row counts or
    widths, numbers not certain to convert exactly, anything that is not a number or null).
    """
    return int(_parse_rows(buf, out, _POW10))
