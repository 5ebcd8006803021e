"""The back-pressure gate and the per-device ledger over any history of fill levels and batches.

Gate: episodes alternate (started, ended, started…), one report each; the gate is closed
exactly from a level at or above high water until a level below low water; the time held adds
up. Ledger: a device's gaps are the sequence numbers it skipped, whatever the repeats and
reorders of redelivery.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from core.nats.backpressure import DeviceLedger, FillGate


@given(st.lists(st.tuples(st.floats(0.0, 1.2), st.floats(0.0, 10.0)), max_size=60))
def test_episodes_alternate_and_follow_the_water_marks(steps: list[tuple[float, float]]) -> None:
    now = [0.0]
    gate = FillGate(high_water=0.8, low_water=0.6, clock=lambda: now[0])
    reports: list[str] = []
    closed_since: float | None = None
    held = 0.0
    for fill, dt in steps:
        now[0] += dt
        was_open = gate.is_open
        change = gate.observe(fill)
        if change is not None:
            reports.append(change)
        if was_open:
            assert gate.is_open == (fill < 0.8)
        else:
            assert gate.is_open == (fill < 0.6)
        assert (change == "started") == (was_open and not gate.is_open)
        assert (change == "ended") == (not was_open and gate.is_open)
        if change == "started":
            closed_since = now[0]
        elif change == "ended":
            assert closed_since is not None
            held += now[0] - closed_since
            assert gate.last_episode_s == now[0] - closed_since
            closed_since = None
    assert all(kind == ("started" if i % 2 == 0 else "ended") for i, kind in enumerate(reports))
    assert gate.episodes == reports.count("started")
    running = 0.0 if closed_since is None else now[0] - closed_since
    assert abs(gate.paused_s() - (held + running)) < 1e-6


@given(st.lists(st.integers(0, 40), max_size=60))
def test_gaps_are_the_skipped_sequence_numbers(arrivals: list[int]) -> None:
    ledger = DeviceLedger()
    for seq in arrivals:
        ledger.forwarded("acme", "hp-1", "boot-1", seq)
    highest = -1
    skipped = 0
    for seq in arrivals:  # what a device's sequence skipped above what was seen before
        if highest >= 0 and seq > highest + 1:
            skipped += seq - highest - 1
        highest = max(highest, seq)
    counts = ledger.devices.get(("acme", "hp-1"))
    assert (counts.gaps if counts else 0) == skipped
    assert (counts.forwarded if counts else 0) == len(arrivals)
