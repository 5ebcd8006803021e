"""Peer statistics merged across partitions (issue 20 on the scale-out engine).

A fleet's series split over partitions, each with its own :class:`Peer` sharing its members of
each bucket through one :class:`PeerBoard`, must learn and score exactly as one detector over
the whole fleet; split without the board, a small peer group is never judged. The board's
bookkeeping (who is waited for, for how long, what is counted) is table-driven.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.detect import RobustZ, peer
from core.detect.peer import Peer
from core.detect.peer_share import PeerBoard, PeerSummary
from core.nats.worker import HandOff
from core.pipeline import CorePipeline, PipelineState
from core.snapshot import Snapshot, decode_snapshot, encode_snapshot
from tests.integration.nats.fleet import SyntheticFleet

H = 3600.0
PARAMS: dict[str, Any] = {"bucket_s": H, "lag_s": 0.0, "warmup": 4, "min_members": 5,
                          "min_cohort": 2, "half_life": 50.0, "persist": 2.0, "half_z": 3.0}
_STATE = ("offset", "n_closed", "zs", "czs", "score", "cscore", "hold")


def _fleet(seed: int, devices: int, buckets: int, groups: int, cohorts: int
           ) -> tuple[np.ndarray, list[str], list[str]]:
    """Hourly samples (4 per hour) of devices in ``groups`` peer groups; device 0 drifts."""
    rng = np.random.default_rng(seed)
    n = buckets * 4
    weather = 5.0 * np.sin(np.arange(n) / 96.0 * 2 * np.pi)[:, None]
    x = 40.0 + weather + rng.normal(0.0, 1.0, devices) + rng.normal(0.0, 0.3, (n, devices))
    x[n // 2:, 0] += np.linspace(0.0, 8.0, n - n // 2)
    x[rng.random(x.shape) < 0.03] = np.nan                   # a member misses a sample
    group = [f"g{d % groups}" for d in range(devices)]
    cohort = [f"c{(d // groups) % cohorts}" for d in range(devices)]
    return x, group, cohort


def _split_run(x: np.ndarray, group: list[str], cohort: list[str], owner: np.ndarray,
               parts: int, board: PeerBoard | None, block: int, held: list[int] | None = None
               ) -> tuple[list[Peer], list[np.ndarray], np.ndarray]:
    """Each partition's detector over its own devices, fed block by block in turn; returns
    the detectors, each one's slots → device, and each device's highest device score."""
    t = 900.0 * np.arange(x.shape[0], dtype=np.float64)
    dets, devices = [], []
    for p in range(parts):
        det = Peer(capacity=8, **PARAMS)
        if board is not None:
            det.share = board.share_for(p)
        mine = np.flatnonzero(owner == p)
        det.assign(np.arange(mine.size), [group[d] for d in mine], [cohort[d] for d in mine])
        dets.append(det)
        devices.append(mine)
    best = np.zeros(x.shape[1])
    for start in range(0, x.shape[0], block):
        for det, mine in zip(dets, devices, strict=True):
            if mine.size:
                s = det.update(np.arange(mine.size), x[start:start + block, mine],
                               t[start:start + block])
                best[mine] = np.maximum(best[mine], s.max(axis=0))
            if board is not None and held is not None:
                held.append(len(board.held_buckets))
                assert board.stats.held_bytes == sum(  # the gauge, kept as it goes
                    s.nbytes for e in board._buckets.values() for s in e.summaries.values())
    for _ in range(64):  # the last buckets: each judged one lets the others go on
        if sum(det.judge_pending() for det in dets) == 0:
            break
    return dets, devices, best


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), devices=st.integers(5, 16), parts=st.integers(2, 4),
       groups=st.integers(1, 3), cohorts=st.integers(1, 3), block=st.integers(1, 9),
       split_seed=st.integers(0, 10_000), judge_members=st.sampled_from([1, 7, 65_536]))
def test_split_over_partitions_learns_as_one_detector(
        seed: int, devices: int, parts: int, groups: int, cohorts: int, block: int,
        split_seed: int, judge_members: int) -> None:
    """Also with the groups judged one at a time (``JUDGE_MEMBERS`` 1) and a few at a time."""
    judging = peer.JUDGE_MEMBERS
    peer.JUDGE_MEMBERS = judge_members
    try:
        _check_split(seed, devices, parts, groups, cohorts, block, split_seed)
    finally:
        peer.JUDGE_MEMBERS = judging


def _check_split(seed: int, devices: int, parts: int, groups: int, cohorts: int, block: int,
                 split_seed: int) -> None:
    x, group, cohort = _fleet(seed, devices, 30, groups, cohorts)
    whole, _, _ = _split_run(x, group, cohort, np.zeros(devices, dtype=np.int64), 1, None, block)
    rng = np.random.default_rng(split_seed)
    owner = rng.permutation(np.concatenate([np.arange(parts),  # no partition without devices
                                            rng.integers(0, parts, devices - parts)]))
    board = PeerBoard(partitions=parts, wait_s=float("inf"))
    split, mine, _ = _split_run(x, group, cohort, owner, parts, board, block)
    one = whole[0].state()
    for det, devs in zip(split, mine, strict=True):
        if not devs.size:
            continue
        state = det.state()
        assert "pending_bucket" not in state  # nothing left waiting
        for name in _STATE:
            np.testing.assert_allclose(state[name][: devs.size], one[name][devs],
                                       rtol=1e-12, atol=1e-12, err_msg=name)
    assert board.stats.buckets_partial == 0


def test_a_small_group_split_in_two_is_judged_only_with_the_board() -> None:
    """Eight peers, four per partition, five needed: alone each half judges nothing."""
    x, group, cohort = _fleet(3, 8, 40, 1, 1)
    owner = np.arange(8) % 2
    _, _, alone = _split_run(x, group, cohort, owner, 2, None, 4)
    _, _, shared = _split_run(x, group, cohort, owner, 2, PeerBoard(2, float("inf")), 4)
    assert alone.max() == 0.0
    assert shared[0] > 0.8 and np.delete(shared, 0).max() < 0.5


def _random_summary(rng: np.random.Generator, n: int, held: float) -> PeerSummary:
    offset = rng.normal(size=n)
    return PeerSummary.of(group=rng.integers(1, 6, n), cohort=rng.integers(1, 4, n),
                          val=rng.normal(size=n), offset=offset,
                          reference=np.where(rng.random(n) < held, rng.normal(size=n), offset),
                          warm=rng.random(n) < 0.7, cohort_warm=rng.random(n) < 0.8)


def _rows_sorted(s: PeerSummary) -> list[tuple[Any, ...]]:
    return sorted(zip(*[c.tolist() for c in s.rows().values()], strict=True))


def test_summaries_survive_bytes_and_merge_is_the_union() -> None:
    a = PeerSummary.of(group=[2, 1], cohort=[3, 3], val=[-1.0, 0.5], offset=[0.2, 0.1],
                       reference=[0.2, 0.0], warm=[False, True], cohort_warm=[True, True])
    assert a.group.tolist() == [1, 2] and a.reference.tolist() == [0.0, 0.2]  # sorted by group
    assert a.held.tolist() == [0] and a.warm.tolist() == [True, False]
    b = PeerSummary.from_bytes(a.to_bytes())
    for name in PeerSummary.COLUMNS:
        np.testing.assert_array_equal(getattr(b, name), getattr(a, name))
    merged = PeerSummary.merge([a, b, PeerSummary.empty()])
    assert _rows_sorted(merged) == sorted(_rows_sorted(a) * 2)
    with pytest.raises(ValueError, match="not a peer summary"):
        PeerSummary.from_bytes(a.to_bytes()[:-3])
    unsorted = a.to_bytes().replace(a.run_group.tobytes(), a.run_group[::-1].tobytes())
    with pytest.raises(ValueError, match="runs covering"):  # judged by binary search
        PeerSummary.from_bytes(unsorted)


def test_a_summary_in_the_byte_form_before_is_read() -> None:
    """One row per member, 42 bytes each (workers of the version before, in a rolling
    upgrade): read as the same members."""
    rng = np.random.default_rng(5)
    s = _random_summary(rng, 40, 0.2)
    columns = {"group": "<i8", "cohort": "<i8", "val": "<f8", "offset": "<f8",
               "reference": "<f8", "warm": "|b1", "cohort_warm": "|b1"}
    rows = s.rows()
    header = {"n": len(s), "columns": [[k, v] for k, v in columns.items()]}
    old = (json.dumps(header).encode() + b"\n"
           + b"".join(np.asarray(rows[k], dtype=v).tobytes() for k, v in columns.items()))
    back = PeerSummary.from_bytes(old)
    for name in PeerSummary.COLUMNS:
        np.testing.assert_array_equal(getattr(back, name), getattr(s, name))


@pytest.mark.parametrize(("n", "held", "max_bytes"), [
    (0, 0.0, 4_096), (1, 1.0, 4_096), (5_000, 0.0, 20_000), (5_000, 1.0, 20_000),
    (20_000, 0.1, 1_048_576), (200_000, 0.05, 1_048_576)],
    ids=["empty", "one", "runs", "all-held", "one-part", "many-parts"])
def test_a_summary_split_to_fit_a_value_is_whole_again(n: int, held: float,
                                                       max_bytes: int) -> None:
    """A partition's summary cut to fit the KV bucket's values (nats-server's max_payload,
    1 MiB; at a million devices a partition's summary is 2.7 MB): every part fits, and the
    parts merged are the summary, array for array."""
    s = _random_summary(np.random.default_rng(n), n, held)
    parts = s.split(max_bytes)
    assert max(len(p.to_bytes()) for p in parts) <= max_bytes
    assert len(parts) >= -(-len(s) * 17 // max_bytes)
    back = PeerSummary.merge([PeerSummary.from_bytes(p.to_bytes()) for p in parts])
    for name in PeerSummary.COLUMNS:
        np.testing.assert_array_equal(getattr(back, name), getattr(s, name), err_msg=name)


@pytest.mark.parametrize("judge_members", [1, 40, 65_536], ids=["by-group", "few", "union"])
def test_judging_over_summaries_is_judging_over_the_union(judge_members: int,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Members whose cohort moved (held offsets) included: judged from the summaries, a group
    or a few at a time or all at once, the state is bit for bit the state judged over one
    union of every member (what the detector did before the summaries were packed)."""
    rng = np.random.default_rng(8)
    parts = [_random_summary(rng, n, 0.3) for n in (60, 45, 0, 80)]
    dets: list[Peer] = []
    for _ in range(2):
        det = Peer(capacity=60, **PARAMS)
        det.assign(np.arange(60), [f"g{g}" for g in range(60)], ["c"] * 60)
        state = det.state()
        state["hold"][:] = rng.integers(0, 3, 60) if not dets else dets[0].state()["hold"]
        state["n_closed"][:] = 5
        det.load_state(state)
        dets.append(det)
    slots = rng.permutation(60)
    monkeypatch.setattr(peer, "JUDGE_MEMBERS", judge_members)
    dets[0]._judge_shared(slots, parts)
    union = PeerSummary.merge(parts)  # one array per column, parts[0]'s rows where they were
    whole = {k: np.concatenate([p.rows()[k] for p in parts]) for k in union.rows()}
    m_slot = np.full(whole["val"].size, -1, dtype=np.int64)
    m_slot[:60] = slots
    a, d = dets[1]._arrays, dets[1]
    peer.judge_members(m_slot, whole["group"], whole["cohort"], whole["val"],
                       whole["offset"], whole["reference"], whole["warm"],
                       whole["cohort_warm"], a["offset"], a["n_closed"], a["hold"],
                       a["zs"], a["czs"], a["score"], a["cscore"], d.alpha, d.min_members,
                       d.min_cohort, d.half_z, d.persist, d.clip, d.spread_floor)
    one, other = dets[0].state(), dets[1].state()
    assert other["score"].max() > 0 and other["cscore"].max() > 0
    for name in _STATE:
        np.testing.assert_array_equal(one[name], other[name], err_msg=name)


def test_a_board_holds_only_the_buckets_still_to_judge() -> None:
    """In step, the members of one bucket (two while the next comes in) are held, not eight."""
    x, group, cohort = _fleet(6, 12, 30, 2, 2)
    held: list[int] = []
    fetched: list[int] = []  # never: nothing is let go before the last partition judged it
    board = PeerBoard(partitions=3, wait_s=float("inf"), fetch=fetched.append)
    _split_run(x, group, cohort, np.arange(12) % 3, 3, board, 4, held=held)
    assert max(held) <= 2 and board.held_buckets == [] and fetched == []
    assert board.stats.held_bytes == 0 and board.stats.buckets_fetched == 0
    assert board.stats.buckets_partial == 0 and board.stats.buckets_gathered > 3 * 25


def test_a_bucket_judged_again_is_fetched_again() -> None:
    """Judged by every partition here, a bucket's members are let go (a late summary of it is
    not held either); a partition that judges it again (taken over, replaying its snapshot)
    has the board fetch it from the transport, and waits for it as for a late partition."""
    clock, fetched = [0.0], list[int]()
    board = PeerBoard(partitions=2, wait_s=10.0, clock=lambda: clock[0], fetch=fetched.append)
    one = PeerSummary.of(group=[1], cohort=[1], val=[1.0])
    board.publish(0, 7, one)
    board.receive(1, 7, one)
    assert board.gather(0, 7) == [one] and board.held_buckets == []
    board.receive(1, 7, one)  # again (a retried put): nobody here needs it
    assert board.held_buckets == []
    assert board.gather(0, 7) is None and fetched == [7]
    board.receive(0, 7, one)
    assert board.gather(0, 7) is None  # partition 1's summary is awaited again ...
    board.receive(1, 7, one)
    assert board.gather(0, 7) == [one] and board.held_buckets == []  # ... and arrives
    assert board.gather(0, 7) is None and fetched == [7, 7]
    clock[0] = 11.0  # the transport had nothing: judged without, after the lateness bound
    assert board.gather(0, 7) == [] and board.stats.buckets_partial == 1
    assert board.stats.buckets_fetched == 2


@pytest.mark.parametrize(("history", "published", "now", "force", "ready", "partial"), [
    ({}, {0}, 0.0, False, False, 0),                   # nothing known: wait for all three
    ({}, {0, 1, 2}, 0.0, False, True, 0),
    ({5: {0, 1}}, {0, 1}, 0.0, False, True, 0),        # 2 never published: not waited for
    ({5: {0, 1, 2}}, {0, 1}, 0.0, False, False, 0),    # 2 is late: wait ...
    ({5: {0, 1, 2}}, {0, 1}, 10.0, False, True, 1),    # ... the lateness bound, then judge
    ({5: {0, 1, 2}}, {0}, 0.0, True, True, 2),         # forced (too much waiting)
    ({-20: {0, 1, 2}, 5: {0}}, {0}, 0.0, False, True, 0),  # 1, 2 silent for a whole ring
], ids=["fresh", "fresh-all-in", "silent-partition", "late", "late-past-bound", "forced",
        "long-silent"])
def test_who_a_bucket_waits_for(history: dict[int, set[int]], published: set[int], now: float,
                                force: bool, ready: bool, partial: int) -> None:
    clock = [0.0]
    board = PeerBoard(partitions=3, wait_s=10.0, clock=lambda: clock[0])
    one = PeerSummary.of(group=[1], cohort=[1], val=[1.0])
    for bucket, parts in history.items():
        for p in parts:
            board.receive(p, bucket, one)
    for p in published:
        board.receive(p, 10, one)
    if now:  # the bound runs from the first ask
        assert board.gather(0, 10, force) is None
        clock[0] = now
    got = board.gather(0, 10, force)
    assert (got is not None) == ready
    if got is not None:
        assert len(got) == len(published - {0})
    assert board.stats.partitions_missing == partial


def test_a_summary_after_its_bucket_was_judged_without_it_is_counted() -> None:
    clock = [0.0]
    board = PeerBoard(partitions=2, wait_s=1.0, clock=lambda: clock[0])
    one = PeerSummary.of(group=[1], cohort=[1], val=[1.0])
    board.receive(0, 3, one)
    board.receive(1, 3, one)
    board.receive(0, 4, one)
    assert board.gather(0, 4) is None
    clock[0] = 2.0
    assert board.gather(0, 4) == []
    board.receive(1, 4, one)
    assert (board.stats.buckets_partial, board.stats.summaries_late) == (1, 1)


def _through_a_snapshot(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``state`` as a partition's snapshot stores and restores it (core.snapshot)."""
    pipeline_state = PipelineState(series=[], dedup={}, above=np.zeros(1, dtype=np.bool_),
                                   detector=state)
    return decode_snapshot(encode_snapshot(Snapshot(0, 1, 0.0, pipeline_state))).state.detector


def test_buckets_waiting_for_other_partitions_survive_a_snapshot() -> None:
    """A partition's owner saves its state while buckets wait for another partition; the next
    owner restores it, publishes those buckets again and judges them as the first would."""
    x, group, cohort = _fleet(4, 10, 20, 1, 1)
    t = 900.0 * np.arange(x.shape[0], dtype=np.float64)
    mine, theirs = np.arange(0, 10, 2), np.arange(1, 10, 2)
    # the two owners of partition 0 judge up to its 20 waiting buckets apart; without a
    # transport to fetch a bucket again, the board holds as many
    board = PeerBoard(partitions=2, wait_s=float("inf"), keep=32)
    first, other = Peer(capacity=8, **PARAMS), Peer(capacity=8, **PARAMS)
    first.assign(np.arange(5), [group[d] for d in mine], [cohort[d] for d in mine])
    first.share = board.share_for(0)
    other.share = board.share_for(1)
    other.assign(np.arange(5), [group[d] for d in theirs], [cohort[d] for d in theirs])
    first.update(np.arange(5), x[:, mine], t)  # the other partition has published nothing
    saved = _through_a_snapshot(first.state())
    assert saved["pending_bucket"].size >= 10
    second = Peer(capacity=8, **PARAMS)
    second.load_state(saved)
    second.share = board.share_for(0)
    assert second.judge_pending() == saved["pending_bucket"].size  # still waiting
    other.update(np.arange(5), x[:, theirs], t)
    for _ in range(64):
        if first.judge_pending() + second.judge_pending() + other.judge_pending() == 0:
            break
    a, b = first.state(), second.state()
    assert "pending_bucket" not in a and "pending_bucket" not in b
    for name in _STATE:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert a["n_closed"][:5].min() >= 15  # the buckets were judged, not dropped


# --- a shared peer detector behind the pipeline: flags whatever the interleaving ----------------

_ROUNDS, _DEVICES = 36, 8


@functools.cache
def _fleet_messages() -> list[list[tuple[str, bytes]]]:
    """Eight pumps' batches (d0000 jumps away from its peers), split over two partitions
    (four pumps each: no partition alone reaches ``min_members``)."""
    fleet = SyntheticFleet("acme", devices=_DEVICES, batch_samples=30, faulty=1,
                           fault_at=30 * 20, jump=12.0)
    parts: list[list[tuple[str, bytes]]] = [[], []]
    for topic, payload, _ in fleet.batches(_ROUNDS):
        parts[int(topic.split("/")[3][1:]) % 2].append((topic, payload))
    return parts


def _flags(schedule: list[int]) -> list[tuple[str, str, str, float]]:
    """Two partitions' pipelines sharing one board: ``schedule`` says, step by step, which
    partition processes its next message (0, 1) or has its waiting buckets judged because
    summaries arrived (2, 3); then both are drained. Every peer onset handed to the store."""
    messages = _fleet_messages()
    board = PeerBoard(2, wait_s=1e9, clock=lambda: 0.0)
    handoffs = [HandOff(), HandOff()]
    pipelines = []
    for p in range(2):
        peer = Peer(bucket_s=300.0, lag_s=300.0, warmup=6, min_members=5)
        peer.share = board.share_for(p)
        pipelines.append(CorePipeline(RobustZ(), handoffs[p], peer=peer))
    at = [0, 0]
    for step in [*schedule, *[p for _ in range(_ROUNDS * _DEVICES) for p in (0, 1)]]:
        p = step % 2
        if step < 2:
            if at[p] < len(messages[p]):
                pipelines[p].process_payload(*messages[p][at[p]])
                at[p] += 1
        else:
            pipelines[p].judge_peers()
    for _ in range(2 * _ROUNDS):  # each judging publishes the next bucket: one at a time
        for pipeline in pipelines:
            pipeline.judge_peers()
    assert all(not pl.peer._pending for pl in pipelines if pl.peer is not None)
    assert [pl.stats.batches_ingested for pl in pipelines] == [len(m) for m in messages]
    return sorted((e.device_id, e.field, e.detector, e.ts) for h in handoffs
                  for b in h.take() for e in b.events if e.detector.startswith("peer"))


@functools.cache
def _eager_flags() -> list[tuple[str, str, str, float]]:
    """In lockstep, each summary judged as soon as it is in."""
    return _flags([s for _ in range(_ROUNDS * _DEVICES) for s in (0, 1, 2, 3)])


def test_a_shared_group_flags_its_outlier_once_per_field() -> None:
    flags = _eager_flags()
    assert {d for d, *_ in flags} == {"d0000"}
    fields = [f for _, f, det, _ in flags if det == "peer"]
    assert len(fields) >= 3 and len(fields) == len(set(fields))


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schedule=st.lists(st.integers(0, 3), max_size=_ROUNDS * _DEVICES * 3))
def test_peer_flags_do_not_depend_on_when_summaries_arrive(schedule: list[int]) -> None:
    """Summaries arriving before or after the owner's batches (a partition far ahead of the
    other, judging only between messages, or only after its last one): the same onsets, each
    handed on once, dated when their bucket fell due."""
    assert _flags(schedule) == _eager_flags()


def test_judged_after_the_last_batch_the_flags_still_go_out() -> None:
    """Partition 0 reads all its messages before partition 1 reads any (so nothing of it can
    be judged until partition 1 catches up, after partition 0's last batch)."""
    n = _ROUNDS * _DEVICES
    assert _flags([0] * n + [1] * n) == _eager_flags()
