"""Peer statistics across partitions: each partition's members of a time bucket, merged.

On the scale-out engine a peer group's devices are spread over many partitions (each with its
own :class:`~core.detect.peer.Peer`), so one partition alone sees a fraction of the peers: its
medians are noisier and a small group falls below ``min_members`` altogether. Here each
partition, when a bucket becomes due, **publishes** a :class:`PeerSummary` of its members of
that bucket (per member: group, cohort, bucket mean, usual offset, the offset its cohort is
measured from, and its two warm flags), and **gathers** every other partition's summary of the
same bucket before it judges its own members over the union. The summaries are the members
themselves, not a sketch, so the statistics over them (medians, MADs, cohort medians) are
exactly those of the one-process detector over the same bucket. They are packed to what the
judging reads: rows sorted by (group, cohort), the labels as runs, the two flags in a byte, the
cohort's offset only where it differs (17 bytes a member, 42 before; docs/scaling.md, "Peer
groups across partitions").

A :class:`PeerBoard` is one process's view: what each partition published for each bucket, and
who is waited for; it holds a bucket's members only while a partition of the process has still
to judge it (one bucket in step, at most ``KEEP_BUCKETS`` + 1), and has the transport fetch a
bucket again for a partition that judges it late. A bucket is ready when every *expected*
partition published it: the
partitions that published any of the ``EXPECTED_WINDOW`` (6) buckets before it (on a board with
no history at all: every partition). A partition that is late (its worker dead, or behind) is
waited for ``wait_s`` (wall clock, from the first gather of the bucket); then the bucket is
judged with what arrived and counted (``buckets_partial``, ``partitions_missing``). A summary
that arrives after its bucket was judged without it is counted too (``summaries_late``).

>>> import numpy as np
>>> board = PeerBoard(partitions=2, wait_s=5.0, clock=lambda: 0.0)
>>> a, b = board.share_for(0), board.share_for(1)
>>> one = PeerSummary.of(group=[7, 7], cohort=[1, 1], val=[1.0, 2.0])
>>> a.publish(100, one)
>>> a.gather(100) is None            # partition 1 has not published bucket 100 yet
True
>>> b.publish(100, PeerSummary.of(group=[7], cohort=[2], val=[3.0]))
>>> [len(s) for s in a.gather(100)]  # the others' members
[1]
>>> PeerSummary.from_bytes(one.to_bytes()).val.tolist()
[1.0, 2.0]
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["PeerBoard", "PeerBoardStats", "PeerShare", "PeerSummary"]

#: buckets before a bucket in which a partition that published counts as expected for it
EXPECTED_WINDOW = 6
#: buckets of members a board holds behind the newest it saw, at most: the partitions judge in
#: step (each publishes a bucket only after judging the one before), so while a partition here
#: judges a bucket the others publish at most the next one. A partition here that is further
#: behind (a takeover replaying from a snapshot) has the board fetch the bucket again from the
#: transport. The memory is (this + 1) buckets × every member of the fleet × 17 bytes
#: (docs/scaling.md, "Peer groups across partitions")
KEEP_BUCKETS = 1
#: buckets a board remembers who published (not the members): the lateness bound's window,
#: and a fetched bucket's lifetime if the partition that asked for it never judges it
_META_KEEP = 64


@dataclass(frozen=True, slots=True)
class PeerSummary:
    """One partition's members of one bucket, sorted by (group, cohort): only what the judging
    reads, packed (17 bytes a member where 42 were before, docs/scaling.md).

    A member is its bucket mean (``val``), its usual ``offset`` and two warm flags (``flags``:
    1 whether it may score, 2 whether it counts in its cohort's score); its group and cohort
    are the run of equal labels it sits in (``run_group``, ``run_cohort``, ``run_size``), and
    the offset its cohort is measured from (``reference``) is its ``offset`` except for the
    rows ``held`` (a member whose cohort moved, ``anchor`` the offset before). Everything is
    float64 as the detector holds it: the judging over summaries is the judging over the
    members themselves, bit for bit.
    """

    #: name → dtype of every array, in the order of the byte form (the 8-byte ones first: read
    #: back, they are aligned views of the bytes, not copies); a new array is added here, and
    #: an older reader ignores it
    COLUMNS: ClassVar[dict[str, Any]] = {
        "run_group": np.int64, "run_cohort": np.int64, "run_size": np.int64,
        "val": np.float64, "offset": np.float64, "held": np.int64, "anchor": np.float64,
        "flags": np.uint8,
    }
    #: bytes a member costs in memory and on the wire, at most: its own 17, a run of its own
    #: (24) and a held offset (16)
    MEMBER_BYTES_MAX: ClassVar[int] = 57

    run_group: NDArray[np.int64]
    run_cohort: NDArray[np.int64]
    run_size: NDArray[np.int64]
    val: NDArray[np.float64]
    offset: NDArray[np.float64]
    flags: NDArray[np.uint8]
    held: NDArray[np.int64]
    anchor: NDArray[np.float64]

    @staticmethod
    def order(group: ArrayLike, cohort: ArrayLike) -> NDArray[np.intp]:
        """The permutation that sorts members by (group, cohort), stably: a summary's rows."""
        return np.lexsort((np.asarray(cohort, dtype=np.int64), np.asarray(group, dtype=np.int64)))

    @classmethod
    def of(cls, group: ArrayLike, cohort: ArrayLike, val: ArrayLike,
           offset: ArrayLike | None = None, reference: ArrayLike | None = None,
           warm: ArrayLike | None = None, cohort_warm: ArrayLike | None = None) -> PeerSummary:
        """A summary from one row per member (offsets 0 and warm members where not given),
        its rows put in :meth:`order`."""
        g = np.asarray(group, dtype=np.int64).ravel()
        n = g.shape[0]
        c = np.asarray(cohort, dtype=np.int64).ravel()
        v = np.asarray(val, dtype=np.float64).ravel()
        off = np.zeros(n) if offset is None else np.asarray(offset, dtype=np.float64).ravel()
        ref = off if reference is None else np.asarray(reference, dtype=np.float64).ravel()
        w = (np.ones(n, dtype=np.bool_) if warm is None
             else np.asarray(warm, dtype=np.bool_).ravel())
        cw = (np.ones(n, dtype=np.bool_) if cohort_warm is None
              else np.asarray(cohort_warm, dtype=np.bool_).ravel())
        if {a.shape[0] for a in (c, v, off, ref, w, cw)} != {n}:
            raise ValueError("a peer summary needs one row per member in every column")
        if n and not np.all((g[1:] > g[:-1]) | ((g[1:] == g[:-1]) & (c[1:] >= c[:-1]))):
            rows = cls.order(g, c)
            g, c, v, off, ref = g[rows], c[rows], v[rows], off[rows], ref[rows]
            w, cw = w[rows], cw[rows]
        starts = np.flatnonzero(np.concatenate(
            [[True], (g[1:] != g[:-1]) | (c[1:] != c[:-1])])) if n else np.zeros(0, np.int64)
        held = np.flatnonzero(ref.view(np.int64) != off.view(np.int64))  # bitwise: NaN, -0.0
        return cls(run_group=g[starts], run_cohort=c[starts],
                   run_size=np.diff(np.append(starts, n)).astype(np.int64),
                   val=np.ascontiguousarray(v), offset=np.ascontiguousarray(off),
                   flags=(w.astype(np.uint8) | (cw.astype(np.uint8) << np.uint8(1))
                          ).astype(np.uint8),
                   held=held.astype(np.int64), anchor=ref[held].copy())

    def __post_init__(self) -> None:
        n = self.val.shape
        if (self.offset.shape != n or self.flags.shape != n or len(n) != 1
                or self.run_group.shape != self.run_cohort.shape
                or self.run_group.shape != self.run_size.shape
                or self.held.shape != self.anchor.shape):
            raise ValueError("a peer summary needs runs covering its members, one row each")

    def _check(self) -> PeerSummary:
        """Itself, if its runs cover its rows in order (what the judging's binary search
        needs): a summary read from bytes is checked; ValueError if not."""
        n = len(self)
        if (int(self.run_size.sum()) != n
                or (self.run_size.size and self.run_size.min() < 0)
                or np.any(self.run_group[1:] < self.run_group[:-1])
                or (self.held.size and not (self.held.min() >= 0 and self.held.max() < n))):
            raise ValueError("a peer summary needs runs covering its members, one row each")
        return self

    def __len__(self) -> int:
        return int(self.val.shape[0])

    @property
    def nbytes(self) -> int:
        """Bytes its arrays hold (what a board keeps of it)."""
        return sum(int(getattr(self, k).nbytes) for k in self.COLUMNS)

    @property
    def run_start(self) -> NDArray[np.int64]:
        """Each run's first row, and after them the number of rows."""
        return np.concatenate([[0], np.cumsum(self.run_size)]).astype(np.int64)

    def group_at(self, rows: NDArray[np.int64]) -> NDArray[np.int64]:
        """The peer group of each of ``rows`` (ascending)."""
        return self.run_group[np.searchsorted(self.run_start, rows, side="right") - 1]

    def cohort_at(self, rows: NDArray[np.int64]) -> NDArray[np.int64]:
        """The cohort of each of ``rows`` (ascending)."""
        return self.run_cohort[np.searchsorted(self.run_start, rows, side="right") - 1]

    def reference_at(self, rows: NDArray[np.int64]) -> NDArray[np.float64]:
        """The offset the cohort score measures each of ``rows`` (ascending) from."""
        out = self.offset[rows]
        if self.held.size and rows.size:
            at = np.minimum(np.searchsorted(rows, self.held), rows.size - 1)
            hit = rows[at] == self.held
            out[at[hit]] = self.anchor[hit]
        return out

    @property
    def group(self) -> NDArray[np.int64]:
        """Each member's peer group."""
        return np.repeat(self.run_group, self.run_size)

    @property
    def cohort(self) -> NDArray[np.int64]:
        """Each member's cohort."""
        return np.repeat(self.run_cohort, self.run_size)

    @property
    def reference(self) -> NDArray[np.float64]:
        """Each member's offset the cohort score measures it from (read-only)."""
        if not self.held.size:
            return self.offset
        out = self.offset.copy()
        out[self.held] = self.anchor
        return out

    @property
    def warm(self) -> NDArray[np.bool_]:
        """Whether each member may score."""
        return (self.flags & 1).astype(np.bool_)

    @property
    def cohort_warm(self) -> NDArray[np.bool_]:
        """Whether each member counts in its cohort's score."""
        return (self.flags & 2).astype(np.bool_)

    def rows(self) -> dict[str, NDArray[Any]]:
        """One array per member column (group, cohort, val, offset, reference, warm,
        cohort_warm), as :meth:`of` takes them."""
        return {"group": self.group, "cohort": self.cohort, "val": self.val,
                "offset": self.offset, "reference": self.reference, "warm": self.warm,
                "cohort_warm": self.cohort_warm}

    @classmethod
    def empty(cls) -> PeerSummary:
        """No members."""
        return cls.of(group=[], cohort=[], val=[])

    @classmethod
    def merge(cls, parts: Sequence[PeerSummary]) -> PeerSummary:
        """The members of all ``parts``: statistics over it are statistics over the union."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        if len(parts) == 1:
            return parts[0]
        first = np.array([(p.run_group[0], p.run_cohort[0]) for p in parts])
        last = np.array([(p.run_group[-1], p.run_cohort[-1]) for p in parts])
        if all(tuple(last[i]) <= tuple(first[i + 1]) for i in range(len(parts) - 1)):
            return cls._concatenate(parts)  # the parts of one summary, in order: no sorting
        columns = [p.rows() for p in parts]
        return cls.of(**{k: np.concatenate([c[k] for c in columns]) for k in columns[0]})

    @classmethod
    def _concatenate(cls, parts: Sequence[PeerSummary]) -> PeerSummary:
        """Parts whose rows follow each other in order: their arrays end to end, a run cut
        between two parts made one again."""
        group = np.concatenate([p.run_group for p in parts])
        cohort = np.concatenate([p.run_cohort for p in parts])
        size = np.concatenate([p.run_size for p in parts])
        new = np.concatenate([[True], (group[1:] != group[:-1]) | (cohort[1:] != cohort[:-1])])
        run = np.cumsum(new) - 1
        rows_before = np.cumsum([0, *[len(p) for p in parts[:-1]]])
        return cls(run_group=group[new], run_cohort=cohort[new],
                   run_size=np.bincount(run, weights=size).astype(np.int64),
                   val=np.concatenate([p.val for p in parts]),
                   offset=np.concatenate([p.offset for p in parts]),
                   flags=np.concatenate([p.flags for p in parts]),
                   held=np.concatenate([p.held + at for p, at in zip(parts, rows_before,
                                                                     strict=True)]),
                   anchor=np.concatenate([p.anchor for p in parts]))

    def take(self, start: int, stop: int) -> PeerSummary:
        """Rows ``start:stop`` (0 ≤ start < stop ≤ its length) as a summary of their own."""
        begin = self.run_start
        first = int(np.searchsorted(begin, start, side="right")) - 1
        last = int(np.searchsorted(begin, stop - 1, side="right")) - 1
        size = self.run_size[first:last + 1].copy()
        size[-1] = stop - begin[last]
        size[0] -= start - begin[first]
        inside = (self.held >= start) & (self.held < stop)
        return PeerSummary(run_group=self.run_group[first:last + 1].copy(),
                           run_cohort=self.run_cohort[first:last + 1].copy(), run_size=size,
                           val=self.val[start:stop].copy(), offset=self.offset[start:stop].copy(),
                           flags=self.flags[start:stop].copy(), held=self.held[inside] - start,
                           anchor=self.anchor[inside].copy())

    def split(self, max_bytes: int) -> list[PeerSummary]:
        """Parts whose byte form (:meth:`to_bytes`) stays below ``max_bytes`` (at least one
        part; ``max_bytes`` at least 4,096), in order: their :meth:`merge` is this summary (a
        transport with a size limit sends them apart, as the KV bucket must: a value is at most
        nats-server's ``max_payload``, 1 MiB).

        >>> s = PeerSummary.of(group=[1] * 300, cohort=[1] * 300, val=[0.0] * 300)
        >>> parts = s.split(5_000)
        >>> [len(p) for p in parts], max(len(p.to_bytes()) for p in parts) <= 5_000
        ([172, 128], True)
        """
        budget = max_bytes - 2_048  # the header line and a run cut in two
        if budget < self.MEMBER_BYTES_MAX:
            raise ValueError(f"parts of {max_bytes} bytes cannot hold a member")
        n = len(self)
        if n * self.MEMBER_BYTES_MAX <= budget:
            return [self]  # fits whatever its runs
        cost = np.full(n, 17, dtype=np.int64)
        starts = self.run_start[:-1]
        cost[starts[self.run_size > 0]] += 24
        cost[self.held] += 16
        total = np.cumsum(cost)
        pieces = max(1, -(-int(total[-1]) // budget)) if n else 1
        if pieces == 1:
            return [self]
        # as many parts as the total needs, cut where each part's cost is about even; a cut
        # that would leave a part over the budget moves forward
        cuts, at = [0], 0
        while at < n:
            room = (total[at - 1] if at else 0) + budget
            nxt = int(np.searchsorted(total, room, side="right"))
            nxt = max(nxt, at + 1)
            cuts.append(min(nxt, n))
            at = cuts[-1]
        return [self.take(a, b) for a, b in itertools.pairwise(cuts)]

    def to_bytes(self) -> bytes:
        """A self-describing byte form: one JSON header line, then each array's bytes."""
        arrays = [getattr(self, k) for k in _WIRE_TYPES]
        header = ",".join(f'["{k}","{v}",{a.size}]'  # JSON, written out: a summary a bucket
                          for (k, v), a in zip(_WIRE_TYPES.items(), arrays, strict=True))
        return b"".join([f'{{"n":{len(self)},"columns":[{header}]}}\n'.encode(),
                         *(np.ascontiguousarray(a, dtype=v).tobytes()
                           for a, v in zip(arrays, _WIRE_TYPES.values(), strict=True))])

    @classmethod
    def from_bytes(cls, data: bytes) -> PeerSummary:
        """Read :meth:`to_bytes`, or the one-row-per-member form of the version before
        (columns group, cohort, val, offset, reference, warm, cohort_warm); arrays it does not
        know are skipped; ValueError if bad."""
        try:
            line, _, body = data.partition(b"\n")
            header = json.loads(line)
            n = int(header["n"])
            arrays: dict[str, NDArray[Any]] = {}
            at = 0
            for name, dtype_str, *count in header["columns"]:
                dtype = _DTYPES.get(dtype_str) or np.dtype(dtype_str)
                size = int(count[0]) if count else n
                if size < 0 or at + size * dtype.itemsize > len(body):
                    raise ValueError("truncated")
                arrays[name] = np.frombuffer(body, dtype=dtype, count=size, offset=at)
                at += size * dtype.itemsize
            if "run_group" in arrays:  # views of ``data`` where the types match: read-only
                return cls(**{k: arrays[k].astype(v, copy=False)
                              for k, v in cls.COLUMNS.items()})._check()
            return cls.of(**{k: arrays[k] for k in ("group", "cohort", "val", "offset",
                                                    "reference", "warm", "cohort_warm")})
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"not a peer summary: {exc}") from exc


#: each array's type in the byte form (little-endian)
_WIRE_TYPES = {k: np.dtype(v).newbyteorder("<").str for k, v in PeerSummary.COLUMNS.items()}
_DTYPES = {v: np.dtype(v) for v in ("<i8", "<f8", "|u1", "|b1")}


class PeerShare(Protocol):
    """One partition's way to the other partitions' members (a :class:`PeerBoard`'s)."""

    def publish(self, bucket: int, summary: PeerSummary) -> None:
        """Tell every partition this partition's members of ``bucket``."""

    def gather(self, bucket: int, force: bool = False) -> list[PeerSummary] | None:
        """The other partitions' members of ``bucket``; None while an expected partition is
        still awaited (``force``: do not wait, judge with what arrived)."""


@dataclass(slots=True)
class PeerBoardStats:
    """What a board saw: its counters are exported as metrics."""

    #: buckets gathered (once per partition and bucket)
    buckets_gathered: int = 0
    #: of which judged without every expected partition (after ``wait_s``, or forced)
    buckets_partial: int = 0
    #: expected partitions missing from those, summed
    partitions_missing: int = 0
    #: summaries that arrived for a bucket some partition here had judged without them
    summaries_late: int = 0
    #: summaries the transport failed to publish (after its retries)
    publish_failures: int = 0
    #: buckets read again from the transport for a partition that judges one let go
    buckets_fetched: int = 0
    #: bytes of the members the board holds now (a gauge)
    held_bytes: int = 0


@dataclass(slots=True)
class _Bucket:
    #: the members held, per partition (let go once no partition here needs them)
    summaries: dict[int, PeerSummary] = field(default_factory=dict)
    #: every partition whose summary arrived, held or not (who a later bucket waits for)
    published: set[int] = field(default_factory=set)
    first_asked: float | None = None
    #: per local partition, the board's version when its gather last found one missing
    checked: dict[int, int] = field(default_factory=dict)
    #: partitions that judged it without some expected ones, and which were missing
    missed: set[int] = field(default_factory=set)
    #: its members were let go: every partition here that judges it did, or it grew too old
    dropped: bool = False
    #: asked the transport for its summaries again (a partition here judges it late)
    fetching: bool = False


class PeerBoard:
    """Every partition's peer summaries per bucket, as one process knows them.

    ``send`` (the transport: a NATS key-value bucket in :mod:`core.nats.peers`) is called with
    each summary a local partition publishes; the transport calls :meth:`receive` with what
    the other processes published. A bucket's members are held only while a partition of this
    process still has to judge it (a partition here that published one of the
    ``EXPECTED_WINDOW`` buckets before it and has not judged it or a later one), and at most
    ``keep`` buckets behind the newest: in step that is one bucket, two while the next one
    comes in. A partition here that asks for a bucket whose members were let go (it fell
    behind, or it was taken over and replays) makes the board ``fetch`` it again from the
    transport, and waits ``wait_s`` for it as for a late partition. Without ``fetch`` (all
    partitions in one process, a test) a bucket is let go only once ``keep`` buckets old.
    """

    def __init__(self, partitions: int, wait_s: float, clock: Callable[[], float] = time.monotonic,
                 send: Callable[[int, int, PeerSummary], None] | None = None,
                 keep: int = KEEP_BUCKETS,
                 fetch: Callable[[int], None] | None = None) -> None:
        self.partitions = partitions
        self.wait_s = wait_s
        self.clock = clock
        self.send = send
        #: asks the transport to hand the summaries of a bucket to :meth:`receive` again
        self.fetch = fetch
        #: buckets of members held behind the newest one seen
        self.keep = keep
        self.stats = PeerBoardStats()
        self._buckets: dict[int, _Bucket] = {}
        self._newest: int | None = None
        #: per partition of this process, the newest bucket it published and judged
        self._published: dict[int, int] = {}
        self._judged: dict[int, int] = {}
        #: counts summaries received: a bucket found incomplete is not looked at again
        #: before something arrived (or its lateness bound passed)
        self.version = 0

    def share_for(self, partition: int) -> PeerShare:
        """The :class:`PeerShare` of one local partition."""
        return _BoardShare(self, partition)

    @property
    def held_buckets(self) -> list[int]:
        """The buckets whose members are held."""
        return sorted(b for b, e in self._buckets.items() if e.summaries)

    def receive(self, partition: int, bucket: int, summary: PeerSummary) -> None:
        """A partition's members of ``bucket`` (a local publish, or from the transport)."""
        entry = self._buckets.get(bucket)
        if entry is None:
            if self._newest is not None and bucket < self._newest - _META_KEEP:
                return  # older than anything still judged here
            entry = self._buckets[bucket] = _Bucket()
            entry.dropped = self._newest is not None and bucket < self._newest - self.keep
        if partition not in entry.summaries and partition in entry.missed:
            self.stats.summaries_late += 1
        entry.published.add(partition)
        if not entry.dropped or entry.fetching:
            before = entry.summaries.get(partition)
            self.stats.held_bytes += summary.nbytes - (0 if before is None else before.nbytes)
            entry.summaries[partition] = summary
        self.version += 1
        if self._newest is None or bucket > self._newest:
            self._newest = bucket
            for old, e in list(self._buckets.items()):
                if old < bucket - self.keep and not e.fetching:
                    self._let_go(e)
            for old in [b for b in self._buckets if b < bucket - _META_KEEP]:
                self._let_go(self._buckets.pop(old))

    def expected(self, bucket: int) -> set[int]:
        """Partitions a bucket waits for: those that published any of the
        ``EXPECTED_WINDOW`` buckets before it, or every partition if none did."""
        seen: set[int] = set()
        for b in range(bucket - EXPECTED_WINDOW, bucket):
            entry = self._buckets.get(b)
            if entry is not None:
                seen.update(entry.published)
        return seen if seen else set(range(self.partitions))

    def gather(self, partition: int, bucket: int, force: bool = False
               ) -> list[PeerSummary] | None:
        """:meth:`PeerShare.gather` for local ``partition``."""
        entry = self._buckets.get(bucket)
        if entry is None:
            entry = self._buckets[bucket] = _Bucket()
            entry.dropped = self._newest is not None and bucket < self._newest - self.keep
        now = self.clock()
        if entry.dropped and not entry.fetching and self.fetch is not None:
            # judged here before (or too old to be held): its summaries again, from the
            # transport, waited for as for a late partition
            entry.fetching = True
            entry.first_asked = now
            entry.checked.clear()
            self.stats.buckets_fetched += 1
            self.fetch(bucket)
        if entry.first_asked is None:
            entry.first_asked = now
        waiting = not force and now - entry.first_asked < self.wait_s
        if waiting and entry.checked.get(partition) == self.version:
            return None  # nothing arrived since it was found incomplete
        missing = self.expected(bucket) - set(entry.summaries) - {partition}
        if missing and waiting:
            entry.checked[partition] = self.version
            return None
        self.stats.buckets_gathered += 1
        if missing:
            self.stats.buckets_partial += 1
            self.stats.partitions_missing += len(missing)
            entry.missed.update(missing)
        others = [s for p, s in sorted(entry.summaries.items()) if p != partition]
        self._judged[partition] = max(bucket, self._judged.get(partition, bucket))
        if self.fetch is not None and not self._needed(bucket):
            self._let_go(entry)  # (without a transport to fetch it again: once too old)
        return others

    def publish(self, partition: int, bucket: int, summary: PeerSummary) -> None:
        """:meth:`PeerShare.publish` for local ``partition``: on the board, and sent."""
        self._published[partition] = max(bucket, self._published.get(partition, bucket))
        self.receive(partition, bucket, summary)
        if self.send is not None:
            self.send(partition, bucket, summary)

    def _needed(self, bucket: int) -> bool:
        """Whether a partition of this process may still judge ``bucket`` (or none is known
        yet: one may start at any moment)."""
        if not self._published:
            return True
        return any(last >= bucket - EXPECTED_WINDOW and self._judged.get(p, bucket - 1) < bucket
                   for p, last in self._published.items())

    def _let_go(self, entry: _Bucket) -> None:
        self.stats.held_bytes -= sum(s.nbytes for s in entry.summaries.values())
        entry.summaries.clear()
        entry.dropped = True
        entry.fetching = False


@dataclass(frozen=True, slots=True)
class _BoardShare:
    board: PeerBoard
    partition: int

    def publish(self, bucket: int, summary: PeerSummary) -> None:
        self.board.publish(self.partition, bucket, summary)

    def gather(self, bucket: int, force: bool = False) -> list[PeerSummary] | None:
        return self.board.gather(self.partition, bucket, force)
