"""Snapshots of one partition's pipeline state, kept in a NATS object store bucket.

A snapshot is one ``.npz`` blob in the format of :mod:`core.snapshot` (numpy arrays only, no
pickle), named after the partition. Object store rather than a key-value bucket because a
partition of a big fleet holds tens of thousands of series, and its state outgrows a KV value
(max_payload, 1 MiB by default); the object store chunks it. A worker that takes a partition
over loads the snapshot and replays the stream from ``stream_seq + 1``.

>>> import numpy as np
>>> from core.pipeline import PipelineState
>>> state = PipelineState(series=[(("acme", "hp-1", "a"), 0)],
...                       dedup={("acme", "hp-1", "b"): (-1, [0, 1])},
...                       above=np.zeros(4, dtype=np.bool_), detector={"m": np.ones(3)})
>>> blob = encode_snapshot(Snapshot(partition=3, stream_seq=42, created_at=1.0, state=state))
>>> decode_snapshot(blob).stream_seq
42
"""

from __future__ import annotations

import logging

from nats.js.client import JetStreamContext
from nats.js.errors import BucketNotFoundError, NotFoundError, ObjectNotFoundError
from nats.js.object_store import ObjectStore

from core.snapshot import Snapshot, decode_snapshot, encode_snapshot

__all__ = ["Snapshot", "SnapshotStore", "decode_snapshot", "encode_snapshot"]

_log = logging.getLogger(__name__)


class SnapshotStore:
    """Snapshots in a JetStream object store bucket, one object per partition."""

    def __init__(self, js: JetStreamContext, bucket: str, replicas: int = 1) -> None:
        self.js = js
        self.bucket = bucket
        self.replicas = replicas
        self._store: ObjectStore | None = None

    async def _bucket(self) -> ObjectStore:
        if self._store is None:
            try:
                self._store = await self.js.object_store(self.bucket)
            except (BucketNotFoundError, NotFoundError):
                self._store = await self.js.create_object_store(
                    self.bucket, description="forewarn partition snapshots",
                    replicas=self.replicas)
        return self._store

    @staticmethod
    def _name(partition: int) -> str:
        return f"partition-{partition:03d}"

    async def save(self, snapshot: Snapshot) -> int:
        """Write (replace) the partition's snapshot; returns its size in bytes."""
        blob = encode_snapshot(snapshot)
        store = await self._bucket()
        await store.put(self._name(snapshot.partition), blob)
        return len(blob)

    async def load(self, partition: int) -> Snapshot | None:
        """The partition's latest snapshot, None when there is none (or it is unreadable)."""
        store = await self._bucket()
        try:
            result = await store.get(self._name(partition))
        except (ObjectNotFoundError, NotFoundError):
            return None
        if result.data is None:
            return None
        try:
            return decode_snapshot(result.data)
        except (ValueError, KeyError) as exc:
            _log.error("partition %d: snapshot unreadable (%s); starting from scratch",
                       partition, exc)
            return None
