"""Scale-out on NATS JetStream: a partitioned, replayable telemetry stream and its workers.

Devices publish over MQTT to nats-server's MQTT listener (or to mosquitto bridged to it); the
stream :mod:`core.nats.stream` keeps the telemetry on disk, each device pinned to one of P
partitions; :mod:`core.nats.worker` runs one durable pull consumer per partition with the
partition's detector state, snapshotted with its stream sequence by :mod:`core.nats.snapshot`.

Errors: stream and connection failures surface as ``nats.errors.Error`` subclasses from
nats-py; a partition count that differs from the existing stream's raises ``ValueError``.
"""

from core.nats.config import NatsConfig
from core.nats.lease import Lease, LeaseKeeper, fair_share, open_lease_bucket
from core.nats.snapshot import Snapshot, SnapshotStore
from core.nats.stream import StreamMonitor, ensure_stream, stream_config, topic_of_subject
from core.nats.worker import HandOff, NatsEngine, PartitionStats, PartitionWorker

__all__ = [
    "HandOff",
    "Lease",
    "LeaseKeeper",
    "NatsConfig",
    "NatsEngine",
    "PartitionStats",
    "PartitionWorker",
    "Snapshot",
    "SnapshotStore",
    "StreamMonitor",
    "ensure_stream",
    "fair_share",
    "open_lease_bucket",
    "stream_config",
    "topic_of_subject",
]
