"""Flat JSON readings → one float64 matrix, in numba, for many messages in one call.

The mapped JSON a fleet sends is nearly always flat: one object of numbers (and a few strings
or booleans) per reading, or an array of such objects, with the same keys in the same order
in every reading. :func:`scan_readings` reads such messages straight into a matrix of values,
one row per reading and one column per key, and names each message's *layout* (its keys, in
order, and which of them hold numbers or ``null``) once per layout instead of once per
reading: no Python dict, float or key string per reading.

Like :mod:`core.json_numbers` it is a fast path, never the judge. It takes only strict JSON it
is certain about: keys and strings of printable ASCII without escapes, numbers that convert
exactly (:func:`core.json_numbers._number`), no nested object or array inside a reading, no
key twice in a reading, every reading of a message with its first one's layout. Anything
else is a failed message, which the caller decodes the general way (orjson, then the
mapping's rules, which also word the error). tests/property/test_json_scan.py checks it
against that way, bit for bit, and tests/property/test_coalesced_ingest.py the pipeline.

>>> scan = scan_readings([b'[{"ts": 1700000000, "temp": 21.5, "on": true}, '
...                       b'{"ts": 1700000060, "temp": null, "on": false}]'])
>>> scan.count.tolist(), scan.keys(0), scan.numeric(0)
([2], ('ts', 'temp', 'on'), (True, True, False))
>>> scan.values[:2, :2].tolist()
[[1700000000.0, 21.5], [1700000060.0, nan]]
>>> scan_readings([b'{"ts": 1, "temp": "2"', b'{"a": 1, "a": 2}']).count.tolist()  # cut, twice
[-1, -1]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numba
import numpy as np
from numpy.typing import NDArray

from core.jit import no_refcount_kernel
from core.json_numbers import _POW10, _number, _skip_ws

__all__ = ["MAX_KEYS", "Scan", "scan_readings"]

#: the most keys a reading may have on the fast path (more: the general way)
MAX_KEYS = 64
#: the most layouts one call names (messages of a further one: the general way)
_MAX_LAYOUTS = 64

_QUOTE, _BACKSLASH = 34, 92


@no_refcount_kernel(inline=True)
def _string_end(buf: NDArray[np.uint8], i: int) -> int:
    """The index after the string whose opening quote is at ``i - 1``; -1 if not plain."""
    n = buf.shape[0]
    while i < n:
        c = buf[i]
        if c == _QUOTE:
            return i + 1
        if c == _BACKSLASH or c < 32 or c >= 128:  # escapes, controls, UTF-8: the general way
            return -1
        i += 1
    return -1


@no_refcount_kernel(inline=True)
def _literal(buf: NDArray[np.uint8], i: int, word: NDArray[np.uint8]) -> int:
    n = buf.shape[0]
    if i + word.shape[0] > n:
        return -1
    for j in range(word.shape[0]):
        if buf[i + j] != word[j]:
            return -1
    return i + int(word.shape[0])


@no_refcount_kernel(inline=True)
def _same_bytes(buf: NDArray[np.uint8], a0: int, a1: int, b0: int, b1: int) -> bool:
    if a1 - a0 != b1 - b0:
        return False
    for j in range(a1 - a0):  # noqa: SIM110 (a loop numba compiles; no generator)
        if buf[a0 + j] != buf[b0 + j]:
            return False
    return True


@no_refcount_kernel()
def _object(buf: NDArray[np.uint8], i: int, end: int, pow10: NDArray[np.float64],
            key_start: NDArray[np.int64], key_end: NDArray[np.int64],
            numeric: NDArray[np.bool_], row: NDArray[np.float64],
            words: NDArray[np.uint8]) -> tuple[int, int]:
    """The flat object at ``buf[i]`` (``{``): (index after it, its key count); -1 if not plain.

    Its keys' spans go to ``key_start``/``key_end``, whether each holds a number or null to
    ``numeric``, the numbers to ``row`` (NaN for null; anything for the rest)."""
    view = buf[:end]
    i = _skip_ws(view, i + 1)
    k = 0
    if i < end and view[i] == 125:  # '}'
        return i + 1, 0
    while True:
        if i >= end or view[i] != _QUOTE or k >= key_start.shape[0]:
            return -1, 0
        key_start[k] = i + 1
        i = _string_end(view, i + 1)
        if i < 0:
            return -1, 0
        key_end[k] = i - 1
        i = _skip_ws(view, i)
        if i >= end or view[i] != 58:  # ':'
            return -1, 0
        i = _skip_ws(view, i + 1)
        if i >= end:
            return -1, 0
        c = view[i]
        if c == _QUOTE:
            i = _string_end(view, i + 1)
            numeric[k] = False
        elif c == 116:  # true
            i = _literal(view, i, words[0:4])
            numeric[k] = False
        elif c == 102:  # false
            i = _literal(view, i, words[4:9])
            numeric[k] = False
        elif c == 110:  # null: a missing reading
            i = _literal(view, i, words[9:13])
            numeric[k] = True
            row[k] = math.nan
        elif c == 45 or 48 <= c <= 57:
            value, i = _number(view, i, pow10)
            numeric[k] = True
            row[k] = value
        else:  # a nested object or array, or not JSON
            return -1, 0
        if i < 0:
            return -1, 0
        k += 1
        i = _skip_ws(view, i)
        if i >= end:
            return -1, 0
        if view[i] == 44:  # ','
            i = _skip_ws(view, i + 1)
        elif view[i] == 125:
            return i + 1, k
        else:
            return -1, 0


@numba.njit(cache=True, nogil=True)
def _scan(buf: NDArray[np.uint8], starts: NDArray[np.int64], ends: NDArray[np.int64],
          single: bool, pow10: NDArray[np.float64], words: NDArray[np.uint8],
          ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64],
                     NDArray[np.float64], NDArray[np.int64], NDArray[np.int64],
                     NDArray[np.bool_], NDArray[np.int64], int]:
    m = starts.shape[0]
    rows_cap = 0
    for j in range(buf.shape[0]):
        if buf[j] == 123:  # every reading opens with '{'
            rows_cap += 1
    count = np.full(m, -1, dtype=np.int64)
    first_row = np.zeros(m, dtype=np.int64)
    layout = np.zeros(m, dtype=np.int64)
    values = np.empty((max(rows_cap, 1), MAX_KEYS), dtype=np.float64)
    most = min(m, _MAX_LAYOUTS)  # a message has one layout
    lay_start = np.empty((most, MAX_KEYS), dtype=np.int64)
    lay_end = np.empty((most, MAX_KEYS), dtype=np.int64)
    lay_numeric = np.empty((most, MAX_KEYS), dtype=np.bool_)
    lay_k = np.empty(most, dtype=np.int64)
    layouts = 0
    key_start = np.empty(MAX_KEYS, dtype=np.int64)
    key_end = np.empty(MAX_KEYS, dtype=np.int64)
    numeric = np.empty(MAX_KEYS, dtype=np.bool_)
    row = 0
    last = -1
    for msg in range(m):
        end = ends[msg]
        view = buf[:end]
        i = _skip_ws(view, starts[msg])
        if i >= end:
            continue
        array = view[i] == 91  # '['
        if array:
            if single:
                continue
            i = _skip_ws(view, i + 1)
        mine = -1
        n = 0
        ok = True
        while True:
            if i >= end or view[i] != 123 or row + n >= values.shape[0]:
                ok = False
                break
            i, k = _object(buf, i, end, pow10, key_start, key_end, numeric,
                           values[row + n], words)
            if i < 0:
                ok = False
                break
            if mine < 0:  # the message's layout: the last one, a known one, or a new one
                for cand in range(layouts + 1):
                    lay = last if cand == 0 else cand - 1
                    if lay < 0 or lay_k[lay] != k:
                        continue
                    same = True
                    for q in range(k):
                        if lay_numeric[lay, q] != numeric[q] or not _same_bytes(
                                buf, lay_start[lay, q], lay_end[lay, q], key_start[q],
                                key_end[q]):
                            same = False
                            break
                    if same:
                        mine = lay
                        break
                if mine < 0:
                    if layouts >= most:
                        ok = False
                        break
                    for a in range(k):  # a key twice: JSON keeps the last, the general way
                        for b in range(a):
                            if _same_bytes(buf, key_start[a], key_end[a], key_start[b],
                                           key_end[b]):
                                ok = False
                    if not ok:
                        break
                    mine = layouts
                    layouts += 1
                    lay_k[mine] = k
                    lay_start[mine, :k] = key_start[:k]
                    lay_end[mine, :k] = key_end[:k]
                    lay_numeric[mine, :k] = numeric[:k]
            else:  # every further reading of the message has the first one's layout
                if lay_k[mine] != k:
                    ok = False
                    break
                for q in range(k):
                    if lay_numeric[mine, q] != numeric[q] or not _same_bytes(
                            buf, lay_start[mine, q], lay_end[mine, q], key_start[q],
                            key_end[q]):
                        ok = False
                        break
                if not ok:
                    break
            n += 1
            if not array:
                break
            i = _skip_ws(view, i)
            if i >= end:
                ok = False
                break
            if view[i] == 44:  # ','
                i = _skip_ws(view, i + 1)
            elif view[i] == 93:  # ']'
                i += 1
                break
            else:
                ok = False
                break
        if not ok or _skip_ws(view, i) != end:
            continue
        count[msg] = n
        first_row[msg] = row
        layout[msg] = mine
        last = mine
        row += n
    return (count, first_row, layout, values, lay_start[:layouts], lay_end[:layouts],
            lay_numeric[:layouts], lay_k[:layouts], row)


_WORDS = np.frombuffer(b"truefalsenull", dtype=np.uint8)


@dataclass(frozen=True, slots=True)
class Scan:
    """What :func:`scan_readings` read: per message its reading count (-1: failed, the general
    way), first row and layout; the rows; and each layout's keys."""

    buffer: bytes
    count: NDArray[np.int64]
    first_row: NDArray[np.int64]
    layout: NDArray[np.int64]
    #: (rows, MAX_KEYS): a reading's values in its layout's key order (NaN: null; the
    #: columns of non-numeric keys hold nothing meaningful)
    values: NDArray[np.float64]
    layout_start: NDArray[np.int64]
    layout_end: NDArray[np.int64]
    layout_numeric: NDArray[np.bool_]
    layout_k: NDArray[np.int64]

    def keys(self, layout: int) -> tuple[str, ...]:
        """The keys of ``layout``, in order."""
        k = int(self.layout_k[layout])
        return tuple(self.buffer[s:e].decode("ascii") for s, e in zip(
            self.layout_start[layout, :k].tolist(), self.layout_end[layout, :k].tolist(),
            strict=True))

    def numeric(self, layout: int) -> tuple[bool, ...]:
        """Whether each key of ``layout`` holds a number or null (True) or not."""
        return tuple(self.layout_numeric[layout, : int(self.layout_k[layout])].tolist())


def scan_readings(payloads: Sequence[bytes], single: bool = False) -> Scan:
    """Read each payload's flat readings (``single``: only messages of one object).

    The payloads are read side by side in one buffer: one call for a whole group of messages.
    """
    buffer = payloads[0] if len(payloads) == 1 else b"".join(payloads)
    lengths = np.fromiter(map(len, payloads), dtype=np.int64, count=len(payloads))
    ends = np.cumsum(lengths)
    (count, first_row, layout, values, lay_start, lay_end, lay_numeric, lay_k,
     _rows) = _scan(np.frombuffer(buffer, dtype=np.uint8), ends - lengths, ends, single,
                    _POW10, _WORDS)
    return Scan(buffer, count, first_row, layout, values, lay_start, lay_end, lay_numeric,
                lay_k)
