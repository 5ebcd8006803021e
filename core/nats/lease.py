"""Partition ownership by lease: one key per partition in a JetStream key-value bucket.

Every worker process that runs with leases (``forewarn core --engine nats`` without ``[core]
owned_partitions``) is a *member*: it keeps a key ``m.<member>`` alive in the bucket and owns
the partitions whose keys ``p.<partition>`` carry its name. The bucket's TTL is the lease
term: a key not renewed within ``lease_ttl_s`` vanishes, so the partitions of a dead machine
come free by themselves and the other members take them over.

- **Taking** a partition is a compare-and-set: ``kv.create`` succeeds only when the key is
  absent (never written, released, or expired), so of two members racing for it one wins.
- **Renewing** is ``kv.update(key, member, last=revision)``: it fails when anyone else wrote
  the key since, and the lease is then lost at once.
- **Fencing**: a member trusts its lease only until ``sent + lease_ttl_s * fence_share``,
  where ``sent`` is its own clock *before* it sent the last successful renewal. The server
  counts the TTL from when it stored that renewal, later, so the old owner's trust always ends
  before the key can expire and anyone else can take it. :meth:`Lease.valid` is checked by the
  partition worker before every acknowledgement batch and every snapshot; a worker whose lease
  is no longer valid stops without acknowledging.
- **Spreading**: members are sorted by name; with P partitions and M members member *i* aims
  at ``P // M`` partitions, one more when ``i < P % M``. A member above its share releases at
  most ``max_moves`` partitions a round (after its worker stopped and snapshotted): the bound
  on moves away from a live owner; one below its share takes free ones up to it; a partition
  seen free for two rounds is taken by anyone, share or not, so a stale member list never
  leaves a partition unowned.

The state machine (:class:`LeaseKeeper`) takes its clock as an argument, so tests move it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import nats.errors
from nats.js.client import JetStreamContext
from nats.js.errors import (
    BucketNotFoundError,
    KeyWrongLastSequenceError,
    NoKeysError,
    NotFoundError,
)
from nats.js.kv import KeyValue

__all__ = ["Lease", "LeaseKeeper", "fair_share", "open_lease_bucket"]

_log = logging.getLogger(__name__)


def fair_share(partitions: int, members: list[str], me: str) -> int:
    """How many partitions ``me`` should own among ``members``.

    >>> [fair_share(8, ["a", "b", "c"], m) for m in "abc"]
    [3, 3, 2]
    >>> fair_share(8, [], "a")
    8
    """
    ranked = sorted(set(members) | {me})
    index = ranked.index(me)
    return partitions // len(ranked) + (1 if index < partitions % len(ranked) else 0)


async def open_lease_bucket(js: JetStreamContext, bucket: str, ttl_s: float,
                            replicas: int = 1) -> KeyValue:
    """The lease bucket, created with ``ttl_s`` as its keys' lifetime when missing."""
    try:
        return await js.key_value(bucket)
    except (BucketNotFoundError, NotFoundError):
        return await js.create_key_value(bucket=bucket, ttl=ttl_s, history=1,
                                         replicas=replicas,
                                         description="forewarn partition leases")


@dataclass(slots=True)
class Lease:
    """One partition held by this member: the key's revision and until when to trust it."""

    partition: int
    revision: int
    #: this member's clock when the last successful write of the key was sent
    sent_at: float
    trust_s: float
    clock: Callable[[], float]
    lost: bool = False

    def valid(self) -> bool:
        """Whether the owner may still acknowledge and snapshot (the fence)."""
        return not self.lost and self.clock() < self.sent_at + self.trust_s


@dataclass(slots=True)
class _Round:
    """What one round changed (for logs and tests)."""

    taken: list[int] = field(default_factory=list)
    released: list[int] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)


class LeaseKeeper:
    """This member's side of the lease protocol: renew, take, release, one round at a time.

    ``start(partition, lease)`` is awaited after a partition is taken (it starts consuming);
    ``stop(partition)`` is awaited before one is released or once it is lost (it must return
    only when the partition's worker acknowledges nothing more).
    """

    def __init__(self, kv: KeyValue, member: str, partitions: int, ttl_s: float,
                 start: Callable[[int, Lease], Awaitable[None]],
                 stop: Callable[[int], Awaitable[None]],
                 max_moves: int = 4, fence_share: float = 0.6,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.kv = kv
        self.member = member
        self.partitions = partitions
        self.ttl_s = ttl_s
        self.max_moves = max_moves
        self.trust_s = ttl_s * fence_share
        self.clock = clock
        self._start = start
        self._stop = stop
        self.leases: dict[int, Lease] = {}
        self._renewing = asyncio.Lock()
        self._member_rev: int | None = None
        self._free_rounds: dict[int, int] = {}
        self.moves = 0

    @staticmethod
    def key(partition: int) -> str:
        """The partition's key in the bucket."""
        return f"p.{partition:04d}"

    def owned(self) -> list[int]:
        """The partitions this member holds now."""
        return sorted(self.leases)

    async def round(self) -> _Round:
        """Renew what is held, announce this member, then take or release toward the share."""
        done = _Round()
        await self._renew(done)
        await self._announce()
        members = await self._members()
        share = fair_share(self.partitions, members, self.member)
        holders = await self._holders()
        free = [p for p in range(self.partitions) if p not in holders]
        for partition in list(self._free_rounds):
            if partition not in free:
                del self._free_rounds[partition]
        for partition in free:
            self._free_rounds[partition] = self._free_rounds.get(partition, 0) + 1
        if len(self.leases) > share:
            for partition in sorted(self.leases, reverse=True)[:min(
                    len(self.leases) - share, self.max_moves)]:
                await self.release(partition)
                done.released.append(partition)
        else:
            wanted = share - len(self.leases)
            # long-free partitions first: they are the ones nobody is about to take
            index = sorted(set(members) | {self.member}).index(self.member)
            offset = index * self.partitions // max(len(members), 1)
            order = sorted(free, key=lambda p: (-self._free_rounds.get(p, 0),
                                                (p - offset) % self.partitions))
            for partition in order:
                # free partitions are not moves away from a live owner: take up to the share
                # at once (a dead machine's partitions), and any left free for two rounds
                overdue = self._free_rounds.get(partition, 0) >= 2
                if wanted <= 0 and not overdue:
                    break
                if await self._take(partition):
                    done.taken.append(partition)
                    wanted -= 1
        self.moves += len(done.taken) + len(done.released)
        if done.taken or done.released or done.lost:
            _log.info("leases of %s: took %s, released %s, lost %s; holds %d (share %d)",
                      self.member, done.taken, done.released, done.lost, len(self.leases),
                      share)
        return done

    async def renew(self) -> list[int]:
        """Renew every lease held, all at once; returns the partitions lost (their workers
        stopped). The engine calls it between rounds too, so a slow round (taking and
        restoring partitions on a loaded machine) never lets the held leases run out."""
        done = _Round()
        await self._renew(done)
        return done.lost

    async def _renew_one(self, partition: int, lease: Lease) -> None:
        sent = self.clock()
        try:
            revision = await self.kv.update(self.key(partition), self.member.encode(),
                                            last=lease.revision)
        except KeyWrongLastSequenceError:
            lease.lost = True
        except (TimeoutError, nats.errors.Error) as exc:
            # not renewed this time; the fence ends the lease if this goes on
            _log.warning("lease of partition %d not renewed: %s", partition, exc)
        else:
            lease.revision, lease.sent_at = revision, max(lease.sent_at, sent)

    async def _renew(self, done: _Round) -> None:
        # one pass at a time: two concurrent updates of a key with the same revision would
        # make the second fail its compare-and-set and look like a lost lease
        async with self._renewing:
            held = list(self.leases.items())
            await asyncio.gather(*(self._renew_one(p, lease) for p, lease in held))
        for partition, lease in held:
            if self.leases.get(partition) is not lease:
                continue  # released meanwhile
            if not lease.valid():
                lease.lost = True
                del self.leases[partition]
                done.lost.append(partition)
                _log.error("partition %d: lease lost; stopping it", partition)
                await self._stop(partition)

    async def _announce(self) -> None:
        key = f"m.{self.member}"
        try:
            if self._member_rev is None:
                self._member_rev = await self.kv.put(key, b"1")
            else:
                self._member_rev = await self.kv.update(key, b"1", last=self._member_rev)
        except KeyWrongLastSequenceError:
            self._member_rev = await self.kv.put(key, b"1")

    async def _members(self) -> list[str]:
        try:
            keys = await self.kv.keys()
        except NoKeysError:
            return [self.member]
        return [k[2:] for k in keys if k.startswith("m.")]

    async def _holders(self) -> set[int]:
        """The partitions whose keys exist (one listing, not a read per partition)."""
        try:
            keys = await self.kv.keys()
        except NoKeysError:
            return set()
        return {int(k[2:]) for k in keys if k.startswith("p.")}

    async def _take(self, partition: int) -> bool:
        sent = self.clock()
        try:
            revision = await self.kv.create(self.key(partition), self.member.encode())
        except KeyWrongLastSequenceError:
            return False  # someone else was quicker
        lease = Lease(partition, revision, sent, self.trust_s, self.clock)
        self.leases[partition] = lease
        self._free_rounds.pop(partition, None)
        await self._start(partition, lease)
        return True

    async def release(self, partition: int) -> None:
        """Stop the partition's worker, then free its key for the next owner."""
        lease = self.leases.pop(partition, None)
        if lease is None:  # lost meanwhile (the renewal task stopped it): nothing to free
            return
        await self._stop(partition)
        lease.lost = True
        async with self._renewing:  # not while a renewal moves the revision
            with contextlib.suppress(KeyWrongLastSequenceError, TimeoutError,
                                     nats.errors.Error):
                await self.kv.delete(self.key(partition), last=lease.revision)

    async def release_all(self) -> None:
        """Free every key held and this member's own (a clean shutdown hands over at once)."""
        for partition in list(self.leases):
            await self.release(partition)
        if self._member_rev is not None:
            with contextlib.suppress(TimeoutError, nats.errors.Error):
                await self.kv.delete(f"m.{self.member}")
