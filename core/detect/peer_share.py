"""Peer statistics across partitions: each partition's members of a time bucket, merged.

On the scale-out engine a peer group's devices are spread over many partitions (each with its
own :class:`~core.detect.peer.Peer`), so one partition alone sees a fraction of the peers: its
medians are noisier and a small group falls below ``min_members`` altogether. Here each
partition, when a bucket becomes due, **publishes** a :class:`PeerSummary` of its members of
that bucket (per member: group, cohort, bucket mean, usual offset, the offset its cohort is
measured from, and its two warm flags), and **gathers** every other partition's summary of the
same bucket before it judges its own members over the union. The summaries are the members
themselves, not a sketch: merging is concatenation, so the merged statistics (medians, MADs,
cohort medians) are exactly those of the one-process detector over the same bucket.

A :class:`PeerBoard` is one process's view: what each partition published for each bucket, and
who is waited for. A bucket is ready when every *expected* partition published it: the
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
#: buckets of summaries a board keeps behind the newest it saw: the partitions judge in step
#: (each publishes a bucket only after judging the one before), so only a partition replaying
#: far back (a static slice restarted after hours) asks for older ones, and judges those with
#: what it has once ``wait_s`` passed. The memory is this many buckets × every member of the
#: fleet × 42 bytes (docs/scaling.md, "Peer groups across partitions")
KEEP_BUCKETS = 8


@dataclass(frozen=True, slots=True)
class PeerSummary:
    """One partition's members of one bucket: equal-length columns, one row per member."""

    #: name → dtype of every column, in the order of the byte form; a new column (a cohort
    #: statistic) is added here, and an older reader ignores it
    COLUMNS: ClassVar[dict[str, Any]] = {
        "group": np.int64, "cohort": np.int64, "val": np.float64, "offset": np.float64,
        "reference": np.float64, "warm": np.bool_, "cohort_warm": np.bool_,
    }

    group: NDArray[np.int64]
    cohort: NDArray[np.int64]
    val: NDArray[np.float64]
    offset: NDArray[np.float64]
    reference: NDArray[np.float64]
    warm: NDArray[np.bool_]
    cohort_warm: NDArray[np.bool_]

    @classmethod
    def of(cls, group: ArrayLike, cohort: ArrayLike, val: ArrayLike,
           offset: ArrayLike | None = None, reference: ArrayLike | None = None,
           warm: ArrayLike | None = None, cohort_warm: ArrayLike | None = None) -> PeerSummary:
        """A summary from columns (offsets 0 and warm members where not given)."""
        n = np.asarray(group).shape[0]
        zeros, yes = np.zeros(n), np.ones(n, dtype=np.bool_)
        columns = {"group": group, "cohort": cohort, "val": val,
                   "offset": zeros if offset is None else offset,
                   "reference": zeros if reference is None else reference,
                   "warm": yes if warm is None else warm,
                   "cohort_warm": yes if cohort_warm is None else cohort_warm}
        return cls(**{k: np.ascontiguousarray(v, dtype=cls.COLUMNS[k])
                      for k, v in columns.items()})

    def __post_init__(self) -> None:
        sizes = {getattr(self, name).shape for name in self.COLUMNS}
        if len(sizes) != 1 or len(next(iter(sizes))) != 1:
            raise ValueError(f"a peer summary needs equal-length 1-d columns, got {sizes}")

    def __len__(self) -> int:
        return int(self.group.shape[0])

    @classmethod
    def empty(cls) -> PeerSummary:
        """No members."""
        return cls.of(group=[], cohort=[], val=[])

    @classmethod
    def merge(cls, parts: Sequence[PeerSummary]) -> PeerSummary:
        """The members of all ``parts``: statistics over it are statistics over the union."""
        if not parts:
            return cls.empty()
        return cls(**{name: np.concatenate([getattr(p, name) for p in parts])
                      for name in cls.COLUMNS})

    def split(self, rows: int) -> list[PeerSummary]:
        """Parts of at most ``rows`` members (at least one part), in order: their
        :meth:`merge` is this summary (a transport with a size limit sends them apart).

        >>> [len(p) for p in PeerSummary.of(group=[1] * 5, cohort=[1] * 5, val=[0.0] * 5
        ...                                 ).split(2)]
        [2, 2, 1]
        """
        starts = range(0, max(len(self), 1), max(rows, 1))
        return [PeerSummary(**{k: getattr(self, k)[a:a + rows] for k in self.COLUMNS})
                for a in starts]

    def to_bytes(self) -> bytes:
        """A self-describing byte form: one JSON header line, then each column's bytes."""
        header = {"n": len(self), "columns": [[k, np.dtype(v).str] for k, v in
                                              self.COLUMNS.items()]}
        body = b"".join(np.ascontiguousarray(getattr(self, k), dtype=np.dtype(v).newbyteorder("<")
                                             ).tobytes() for k, v in self.COLUMNS.items())
        return json.dumps(header, separators=(",", ":")).encode() + b"\n" + body

    @classmethod
    def from_bytes(cls, data: bytes) -> PeerSummary:
        """Read :meth:`to_bytes` (columns it does not know are skipped); ValueError if bad."""
        try:
            line, _, body = data.partition(b"\n")
            header = json.loads(line)
            n = int(header["n"])
            columns: dict[str, NDArray[Any]] = {}
            at = 0
            for name, dtype_str in header["columns"]:
                dtype = np.dtype(dtype_str)
                size = n * dtype.itemsize
                if at + size > len(body):
                    raise ValueError("truncated")
                if name in cls.COLUMNS:
                    columns[name] = np.frombuffer(body, dtype=dtype, count=n, offset=at
                                                  ).astype(cls.COLUMNS[name])
                at += size
            return cls(**columns)
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"not a peer summary: {exc}") from exc


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


@dataclass(slots=True)
class _Bucket:
    summaries: dict[int, PeerSummary] = field(default_factory=dict)
    first_asked: float | None = None
    #: per local partition, the board's version when its gather last found one missing
    checked: dict[int, int] = field(default_factory=dict)
    #: partitions that judged it without some expected ones, and which were missing
    missed: set[int] = field(default_factory=set)


class PeerBoard:
    """Every partition's peer summaries per bucket, as one process knows them.

    ``send`` (the transport: a NATS key-value bucket in :mod:`core.nats.peers`) is called with
    each summary a local partition publishes; the transport calls :meth:`receive` with what
    the other processes published.
    """

    def __init__(self, partitions: int, wait_s: float, clock: Callable[[], float] = time.monotonic,
                 send: Callable[[int, int, PeerSummary], None] | None = None,
                 keep: int = KEEP_BUCKETS) -> None:
        self.partitions = partitions
        self.wait_s = wait_s
        self.clock = clock
        self.send = send
        #: buckets kept behind the newest one seen
        self.keep = keep
        self.stats = PeerBoardStats()
        self._buckets: dict[int, _Bucket] = {}
        self._newest: int | None = None
        #: counts summaries received: a bucket found incomplete is not looked at again
        #: before something arrived (or its lateness bound passed)
        self.version = 0

    def share_for(self, partition: int) -> PeerShare:
        """The :class:`PeerShare` of one local partition."""
        return _BoardShare(self, partition)

    def receive(self, partition: int, bucket: int, summary: PeerSummary) -> None:
        """A partition's members of ``bucket`` (a local publish, or from the transport)."""
        if self._newest is not None and bucket < self._newest - self.keep:
            return  # older than anything still judged here
        entry = self._buckets.setdefault(bucket, _Bucket())
        if partition not in entry.summaries and partition in entry.missed:
            self.stats.summaries_late += 1
        entry.summaries[partition] = summary
        self.version += 1
        if self._newest is None or bucket > self._newest:
            self._newest = bucket
            for old in [b for b in self._buckets if b < bucket - self.keep]:
                del self._buckets[old]

    def expected(self, bucket: int) -> set[int]:
        """Partitions a bucket waits for: those that published any of the
        ``EXPECTED_WINDOW`` buckets before it, or every partition if none did."""
        seen: set[int] = set()
        for b in range(bucket - EXPECTED_WINDOW, bucket):
            entry = self._buckets.get(b)
            if entry is not None:
                seen.update(entry.summaries)
        return seen if seen else set(range(self.partitions))

    def gather(self, partition: int, bucket: int, force: bool = False
               ) -> list[PeerSummary] | None:
        """:meth:`PeerShare.gather` for local ``partition``."""
        entry = self._buckets.setdefault(bucket, _Bucket())
        now = self.clock()
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
        return [s for p, s in sorted(entry.summaries.items()) if p != partition]

    def publish(self, partition: int, bucket: int, summary: PeerSummary) -> None:
        """:meth:`PeerShare.publish` for local ``partition``: on the board, and sent."""
        self.receive(partition, bucket, summary)
        if self.send is not None:
            self.send(partition, bucket, summary)


@dataclass(frozen=True, slots=True)
class _BoardShare:
    board: PeerBoard
    partition: int

    def publish(self, bucket: int, summary: PeerSummary) -> None:
        self.board.publish(self.partition, bucket, summary)

    def gather(self, bucket: int, force: bool = False) -> list[PeerSummary] | None:
        return self.board.gather(self.partition, bucket, force)
