"""Python's garbage collector set for a long-running ingest process.

Under a backlog the MQTT ingest holds thousands of messages at once (paho's packets, their
MQTT 5 properties, aiomqtt's messages), and each survives a few young collections. CPython
then runs full collections often, and each walks every object the process holds — the
imported libraries, the detectors, the rules — so a backlog of one-reading messages cost
~150 µs of CPU per message instead of ~75 µs (``benchmarks/ingest_throughput.py --mapped``,
``mqtt_direct/*``). :func:`settle_heap` moves what startup built out of the collector's
reach (``gc.freeze``) and collects young objects every 10,000 allocations instead of 700.
Reference counting still frees almost everything at once; only cyclic garbage waits longer.

>>> import gc
>>> before = gc.get_threshold()
>>> settle_heap()
>>> gc.get_threshold()[0], gc.get_freeze_count() > 0
(10000, True)
>>> unsettle_heap(before)
>>> gc.get_threshold() == before, gc.get_freeze_count()
(True, 0)
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_THRESHOLD", "settle_heap", "unsettle_heap"]

#: allocations between collections of the youngest generation (CPython's default: 700)
YOUNG_THRESHOLD = 10_000


def settle_heap(young_threshold: int = YOUNG_THRESHOLD) -> None:
    """Freeze what startup built and collect young objects less often (call once started)."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young_threshold, middle, old)


def unsettle_heap(threshold: tuple[int, int, int]) -> None:
    """Undo :func:`settle_heap` (benchmarks measuring with and without it)."""
    gc.unfreeze()
    gc.set_threshold(*threshold)
