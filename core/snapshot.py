"""The one snapshot format of a pipeline's learned state: a numpy ``.npz``, no pickle.

Both engines write it: a NATS partition worker into a JetStream object store
(:mod:`core.nats.snapshot`), the direct MQTT engine into a file (:mod:`core.checkpoint`). A
snapshot carries the partition and the stream sequence it covers; the direct engine, which has
neither, writes partition 0 and sequence 0.

>>> import numpy as np
>>> from core.pipeline import PipelineState
>>> state = PipelineState(series=[(("acme", "hp-1", "a"), 0)],
...                       dedup={("acme", "hp-1", "b"): (-1, [0, 1])},
...                       above=np.zeros(4, dtype=np.bool_), detector={"m": np.ones(3)},
...                       firmware={("acme", "hp-1"): "2.1"})
>>> blob = encode_snapshot(Snapshot(partition=3, stream_seq=42, created_at=1.0, state=state))
>>> back = decode_snapshot(blob)
>>> back.stream_seq, back.state.series, back.state.dedup, back.state.detector["m"].tolist()
(42, [(('acme', 'hp-1', 'a'), 0)], {('acme', 'hp-1', 'b'): (-1, [0, 1])}, [1.0, 1.0, 1.0])
>>> back.state.firmware
{('acme', 'hp-1'): '2.1'}
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core.pipeline import PipelineState

__all__ = ["Snapshot", "decode_snapshot", "encode_snapshot"]

_FORMAT = 1


@dataclass(slots=True)
class Snapshot:
    """A pipeline's state after the message with stream sequence ``stream_seq``."""

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
        # added within format 1: older snapshots have no firmware (read as none known)
        "firmware": [[tenant, device, version]
                     for (tenant, device), version in state.firmware.items()],
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
            firmware={(t, d): str(v) for t, d, v in meta.get("firmware", [])},
        )
    return Snapshot(int(meta["partition"]), int(meta["stream_seq"]), float(meta["created_at"]),
                    state)
