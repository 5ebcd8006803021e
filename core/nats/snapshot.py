"""Snapshots of one partition's pipeline state with the stream sequence they cover.

A snapshot is one ``.npz`` blob (numpy arrays only, no pickle) in a NATS object store bucket,
named after the partition. Object store rather than a key-value bucket because a partition of a
big fleet holds tens of thousands of series, and its state outgrows a KV value (max_payload,
1 MiB by default); the object store chunks it. A worker that takes a partition over loads the
snapshot and replays the stream from ``stream_seq + 1``.

>>> import numpy as np
>>> from core.pipeline import PipelineState
>>> state = PipelineState(series=[(("acme", "hp-1", "a"), 0)],
...                       dedup={("acme", "hp-1", "b"): (-1, [0, 1])},
...                       above=np.zeros(4, dtype=np.bool_), detector={"m": np.ones(3)})
>>> blob = encode_snapshot(Snapshot(partition=3, stream_seq=42, created_at=1.0, state=state))
>>> back = decode_snapshot(blob)
>>> back.stream_seq, back.state.series, back.state.dedup, back.state.detector["m"].tolist()
(42, [(('acme', 'hp-1', 'a'), 0)], {('acme', 'hp-1', 'b'): (-1, [0, 1])}, [1.0, 1.0, 1.0])
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from nats.js.client import JetStreamContext
from nats.js.errors import BucketNotFoundError, NotFoundError, ObjectNotFoundError
from nats.js.object_store import ObjectStore
from numpy.typing import NDArray

from core.pipeline import PipelineState

__all__ = ["Snapshot", "SnapshotStore", "decode_snapshot", "encode_snapshot"]

_log = logging.getLogger(__name__)
_FORMAT = 1


@dataclass(slots=True)
class Snapshot:
    """A partition's pipeline state after the message with stream sequence ``stream_seq``."""

    partition: int
    stream_seq: int
    created_at: float
    state: PipelineState


def encode_snapshot(snapshot: Snapshot) -> bytes:
    """The snapshot as compressed ``.npz`` bytes."""
    state = snapshot.state
    dedup_keys = list(state.dedup)
    floors = np.array([state.dedup[k][0] for k in dedup_keys], dtype=np.int64)
    counts = np.array([len(state.dedup[k][1]) for k in dedup_keys], dtype=np.int64)
    seqs = np.array([s for k in dedup_keys for s in state.dedup[k][1]], dtype=np.int64)
    meta = {
        "format": _FORMAT,
        "partition": snapshot.partition,
        "stream_seq": snapshot.stream_seq,
        "created_at": snapshot.created_at,
        "series": [[list(key), slot] for key, slot in state.series],
        "dedup_keys": [list(k) for k in dedup_keys],
        "detector": sorted(state.detector),
    }
    arrays: dict[str, NDArray[Any]] = {
        "meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
        "above": state.above,
        "dedup_floors": floors,
        "dedup_counts": counts,
        "dedup_seqs": seqs,
    }
    arrays.update({f"det.{name}": arr for name, arr in state.detector.items()})
    out = io.BytesIO()
    np.savez_compressed(out, **arrays)  # type: ignore[arg-type]
    return out.getvalue()


def decode_snapshot(blob: bytes) -> Snapshot:
    """Inverse of :func:`encode_snapshot`; ``ValueError`` for a blob it cannot read."""
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        meta = json.loads(npz["meta"].tobytes())
        if meta.get("format") != _FORMAT:
            raise ValueError(f"snapshot format {meta.get('format')!r} is not {_FORMAT}")
        floors, counts, seqs = npz["dedup_floors"], npz["dedup_counts"], npz["dedup_seqs"]
        ends = np.cumsum(counts)
        dedup = {
            (k[0], k[1], k[2]): (int(floors[i]), seqs[ends[i] - counts[i]:ends[i]].tolist())
            for i, k in enumerate(meta["dedup_keys"])
        }
        state = PipelineState(
            series=[((k[0], k[1], k[2]), int(slot)) for k, slot in meta["series"]],
            dedup=dedup,
            above=npz["above"].copy(),
            detector={name: npz[f"det.{name}"].copy() for name in meta["detector"]},
        )
    return Snapshot(int(meta["partition"]), int(meta["stream_seq"]), float(meta["created_at"]),
                    state)


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
