"""Core's persistent MQTT sessions: the client, and the retry while the broker is away.

The telemetry subscriber (:mod:`core.ingest`) and the lifecycle listener (:mod:`core.lifecycle`)
open the same kind of session (persistent: ``clean_session``/``clean_start`` off, MQTT 5's
session expiry from ``[mqtt] session_expiry_s``) and wait the same way between tries (full-jitter
backoff up to ``[mqtt] reconnect_max_s``), each under its own client id.

>>> import random
>>> retry = BrokerRetry(MqttConfig(port=1884, reconnect_max_s=2.0), random.Random(1))
>>> retry.failed(OSError(111, "Connection refused")) <= 0.5
True
>>> retry.said
'cannot reach the MQTT broker at 127.0.0.1:1884 ([Errno 111] Connection refused)'
>>> retry.connected(); retry.failed(OSError(104, "Connection reset")) <= 0.5
True
>>> retry.said.split(" (")[0]
'lost the MQTT broker at 127.0.0.1:1884'
"""

from __future__ import annotations

import logging
import random
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from core.config import MqttConfig
from edge.backoff import Backoff

__all__ = ["BrokerRetry", "persistent_client"]


def persistent_client(config: MqttConfig, identifier: str, *,
                      client_class: type[aiomqtt.Client] = aiomqtt.Client,
                      receive_maximum: int | None = None, **options: Any) -> aiomqtt.Client:
    """A client of ``config``'s broker, as ``identifier``, on a session the broker keeps while
    core is away (``options``: aiomqtt's, e.g. ``timeout``)."""
    identity: dict[str, Any] = {"username": config.username, "password": config.password,
                                "identifier": identifier, **options}
    if config.protocol == "3.1.1":
        return client_class(config.host, config.port, protocol=aiomqtt.ProtocolVersion.V311,
                            clean_session=False, **identity)
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = config.session_expiry_s
    if receive_maximum is not None:
        props.ReceiveMaximum = receive_maximum
    return client_class(config.host, config.port, protocol=aiomqtt.ProtocolVersion.V5,
                        clean_start=False, properties=props, **identity)


class BrokerRetry:
    """The delay before the next try at the broker, and the line that says why
    (``cannot reach`` until the first connection, ``lost`` after)."""

    def __init__(self, config: MqttConfig, rng: random.Random | None = None) -> None:
        self.config = config
        self._backoff = Backoff(0.5, config.reconnect_max_s, rng)
        self._reached = False
        #: the last failure, in words
        self.said = ""

    def connected(self) -> None:
        """The session is up: the next failure starts from the shortest delay again."""
        self._backoff.reset()
        self._reached = True

    def failed(self, exc: BaseException) -> float:
        """Seconds to wait after ``exc``; :attr:`said` says what happened."""
        what = "lost" if self._reached else "cannot reach"
        self.said = f"{what} the MQTT broker at {self.config.host}:{self.config.port} ({exc})"
        return self._backoff.next_delay()

    def log(self, logger: logging.Logger, exc: BaseException, prefix: str = "") -> float:
        """:meth:`failed`, with a warning on ``logger``; the seconds to wait."""
        delay = self.failed(exc)
        logger.warning("%s%s; retrying in %.1f s", prefix, self.said, delay)
        return delay
