"""The ingest bridge as ``forewarn core --engine nats`` runs it: back-pressure episodes become
team notices.

:class:`core.nats.bridge.IngestBridge` forwards the broker's telemetry into the stream and holds
it at the broker while the stream is past ``[nats] high_water``. Each episode is reported twice
— when it starts and when it ends — as a team notice on ``[notify] team`` (to ``[notify.email]
team_address`` when that is e-mail), queued in the outbox once per episode and kind: the
idempotency key names the stream, the bridge and the episode's start.

>>> from core.nats.bridge import Episode
>>> subject, body = episode_text(Episode("started", 1, 0.0, 0.83, 0, 0.0),
...                              NatsConfig(), "forewarn-bridge")
>>> subject
'[warning] ingest back-pressure: stream FOREWARN_TELEMETRY 83% full of unread telemetry'
"""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import Engine

from core.nats import NatsConfig
from core.nats.bridge import Episode, IngestBridge
from forewarn.settings import Settings
from rules.outbox import queue_service_notice

__all__ = ["episode_text", "make_bridge"]


def episode_text(episode: Episode, cfg: NatsConfig, bridge: str) -> tuple[str, str]:
    """Subject and body of the team notice about one episode's start or end."""
    if episode.kind == "started":
        subject = (f"[warning] ingest back-pressure: stream {cfg.stream} "
                   f"{episode.fill:.0%} full of unread telemetry")
        body = (f"Unread telemetry fills {episode.fill:.0%} of the stream {cfg.stream} "
                f"(high-water mark {cfg.high_water:.0%} of {cfg.max_bytes} bytes). "
                f"The ingest bridge {bridge} stops taking telemetry from the broker until the "
                f"workers have drained it below {cfg.low_water:.0%}: devices' messages wait "
                "unacknowledged at the broker meanwhile. Check that the workers run and that "
                "the store takes their writes (forewarn_partition_lag, forewarn_store_up).")
    else:
        subject = (f"[resolved] ingest back-pressure over: stream {cfg.stream} "
                   f"{episode.fill:.0%} unread")
        body = (f"Unread telemetry is down to {episode.fill:.0%} of the stream {cfg.stream}; "
                f"the ingest "
                f"bridge {bridge} forwards again after holding telemetry for "
                f"{episode.paused_s:.0f} s.")
    body += (f" Batches missing from devices' sequences at the bridge so far (lost before "
             f"it, e.g. by the broker's queue): {episode.gaps}; "
             "forewarn_ingest_gap_batches_total names the devices.")
    return subject, body


def make_bridge(settings: Settings, cases: Engine) -> IngestBridge:
    """The bridge of ``[nats]`` reading ``[mqtt]``, reporting its episodes to the team."""
    cfg = settings.nats
    notify = settings.notify
    recipient = (notify.email.team_address
                 if notify.team == "email" and notify.email is not None else "")

    async def report(episode: Episode) -> None:
        subject, body = episode_text(episode, cfg, cfg.bridge_client_id)
        key = (f"backpressure-{cfg.stream}-{cfg.bridge_client_id}-"
               f"{episode.started_at:.3f}-{episode.kind}")
        kind = "backpressure" if episode.kind == "started" else "backpressure_end"
        await asyncio.to_thread(queue_service_notice, cases, notify.team, kind, subject, body,
                                key, time.time(), recipient)

    return IngestBridge(cfg, settings.mqtt, on_episode=report)
