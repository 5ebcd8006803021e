"""Configuration of the JetStream engine: where NATS is, the stream, partitions and workers.

>>> cfg = NatsConfig()
>>> cfg.partitions, cfg.fetch_batch, cfg.consumer_name(7)
(32, 64, 'fw-part-07')
>>> NatsConfig(partitions=0)
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for NatsConfig
...
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.lifecycle import LIFECYCLE_KINDS

__all__ = ["NatsConfig"]


class NatsConfig(BaseModel):
    """The stream every device's telemetry lands in, and how workers consume it.

    ``partitions`` is fixed for the life of the stream (changing it moves devices between
    partitions, and so between detector states): choose it generous, a few times the largest
    number of worker processes you expect.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = "nats://127.0.0.1:4222"
    stream: str = "FOREWARN_TELEMETRY"
    #: subjects the MQTT listener publishes device telemetry on (MQTT '/' becomes NATS '.');
    #: the devices' lifecycle subjects beside it (``status``, ``event``, ``config.reported``
    #: in place of ``telemetry``) are captured too, into the same partitions
    ingress_subject: str = "forewarn.v1.*.*.telemetry"
    #: stored subjects: ``{prefix}.{partition}.{tenant}.{device}.{kind}``
    partition_prefix: str = "fw.tp"
    partitions: int = Field(default=32, ge=1, le=1024)
    #: how long the stream keeps telemetry for replay
    max_age_s: float = Field(default=24 * 3600.0, gt=0)
    #: disk the stream may use; when full the oldest messages go (discard old: read ones,
    #: while the ingest bridge's back-pressure keeps the unread below ``high_water``)
    max_bytes: int = Field(default=10 * 1024**3, ge=1024 * 1024)
    #: fill level (share of ``max_bytes``) from which the monitor raises its alert
    alert_fill: float = Field(default=0.8, gt=0, le=1)
    #: run the ingest bridge in the supervisor: MQTT (``[mqtt]``, the broker devices connect
    #: to) → the stream, a message acknowledged to the broker only once the stream stored it
    bridge: bool = False
    #: the bridge's MQTT client id (persistent session); one per machine
    bridge_client_id: str = "forewarn-bridge"
    #: the bridge's subscription; several machines share one with "$share/<group>/…"; the
    #: devices' lifecycle topics beside it are subscribed too
    bridge_subscription: str = "forewarn/v1/+/+/telemetry"
    #: messages the broker may send the bridge unacknowledged (MQTT 5 receive maximum)
    bridge_receive_maximum: int = Field(default=256, ge=1, le=65535)
    #: publishes to the stream the bridge has in flight at once (sent in order)
    bridge_window: int = Field(default=64, ge=1, le=65535)
    #: back-pressure: when the unread part of the stream (from the oldest message a partition
    #: has not acknowledged to the newest) reaches this share of ``max_bytes``, the bridge
    #: stops taking messages from the broker (they wait there, unacknowledged) ...
    high_water: float = Field(default=0.8, gt=0, le=1)
    #: ... and takes them again once the workers drained the stream below this level
    low_water: float = Field(default=0.6, ge=0, lt=1)
    #: while it holds back, the bridge also asks edge agents to hold their telemetry in
    #: their disk queues (retained ``forewarn/v1/_ingest/flow``): devices slow down themselves
    hold_devices: bool = True
    #: how long an agent holds after the last such message (the bridge repeats it every third
    #: of this while the episode lasts, and releases the agents when it ends)
    device_hold_s: float = Field(default=60.0, gt=0, le=3600)
    #: how often the bridge looks at the stream's fill level
    fill_check_s: float = Field(default=2.0, gt=0)
    replicas: int = Field(default=1, ge=1, le=5)
    #: messages per fetch, and the consumer's max_ack_pending: one batch in flight per partition
    fetch_batch: int = Field(default=64, ge=1, le=10_000)
    fetch_timeout_s: float = Field(default=1.0, gt=0)
    #: redelivery after this long unacknowledged (only a crashed owner leaves messages unacked)
    ack_wait_s: float = Field(default=60.0, gt=0)
    #: detector state of each partition is snapshotted this often (and at shutdown)
    snapshot_interval_s: float = Field(default=30.0, gt=0)
    #: object store bucket holding the snapshots
    snapshot_bucket: str = "forewarn-snapshots"
    #: store retries while the store is down: full-jitter backoff up to this delay
    store_retry_max_s: float = Field(default=5.0, gt=0)
    #: "lease": processes take partitions through leases in ``lease_bucket`` (a dead one's
    #: partitions move within seconds); "static": each process consumes the slice it is given
    #: (``[core] owned_partitions`` set also means static)
    ownership: Literal["lease", "static"] = "lease"
    #: key-value bucket holding one lease per partition and one key per live process
    lease_bucket: str = "forewarn-leases"
    #: a lease not renewed for this long expires and its partition is taken over
    lease_ttl_s: float = Field(default=10.0, ge=1.0)
    #: partitions one process takes or releases per lease round (bounded rebalance)
    lease_max_moves: int = Field(default=4, ge=1)
    #: peer statistics across partitions (``[peer]``): each partition publishes its devices'
    #: bucket means per time bucket to ``peer_bucket`` and judges its own over every
    #: partition's (docs/scaling.md, "Peer groups across partitions"); false: each partition's
    #: peer groups are its own devices alone
    peer_share: bool = True
    #: key-value bucket of the partitions' peer summaries (one key per bucket and partition)
    peer_bucket: str = "forewarn-peers"
    #: the lateness bound: a partition that has not published a bucket this long (wall clock)
    #: after another first needed it is judged without (and counted)
    peer_wait_s: float = Field(default=10.0, ge=0)
    #: how long summaries are kept (a new owner replaying from a snapshot reads them again)
    peer_keep_s: float = Field(default=12 * 3600.0, gt=0)

    @model_validator(mode="after")
    def _water_marks(self) -> NatsConfig:
        if self.low_water >= self.high_water:
            raise ValueError(f"low_water {self.low_water} must lie below high_water "
                             f"{self.high_water}")
        return self

    def ingress_subjects(self) -> list[str]:
        """Every subject the stream captures: the telemetry and the lifecycle messages
        (:data:`core.lifecycle.LIFECYCLE_KINDS`) of the same devices.

        >>> NatsConfig(ingress_subject="forewarn.v1.acme.*.telemetry").ingress_subjects()[1:]
        ['forewarn.v1.acme.*.status', 'forewarn.v1.acme.*.event', \
'forewarn.v1.acme.*.config.reported']
        """
        base = self.ingress_subject.rsplit(".", 1)[0]
        return [self.ingress_subject,
                *(f"{base}.{kind.replace('/', '.')}" for kind in LIFECYCLE_KINDS)]

    def consumer_name(self, partition: int) -> str:
        """Durable consumer name of one partition."""
        return f"fw-part-{partition:02d}"

    def partition_subject(self, partition: int) -> str:
        """Filter subject of one partition's consumer."""
        return f"{self.partition_prefix}.{partition}.>"
