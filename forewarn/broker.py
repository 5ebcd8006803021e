"""The embedded MQTT broker (amqtt, in-process) so the demo needs no server.

It speaks MQTT 3.1.1 and moves about a thousand messages a second: enough for the demo because
devices send many samples per message. Production uses Mosquitto (see README).

Usage::

    async with EmbeddedBroker("127.0.0.1", 0) as broker:
        print(broker.port)
"""

from __future__ import annotations

import logging
import socket
from types import TracebackType

from amqtt.broker import Broker

__all__ = ["EmbeddedBroker", "free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedBroker:
    """An amqtt broker on ``host:port`` (port 0 picks a free port), anonymous access."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._broker: Broker | None = None

    async def __aenter__(self) -> EmbeddedBroker:
        # amqtt logs every connection at INFO; keep the demo's terminal for the demo
        logging.getLogger("amqtt").setLevel(logging.WARNING)
        self._broker = Broker({
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
            },
        })
        await self._broker.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None
