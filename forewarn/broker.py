"""The embedded MQTT broker (amqtt, in-process) so the demo needs no server.

It speaks MQTT 3.1.1 and moves about a thousand messages a second: enough for the demo because
devices send many samples per message. Production uses Mosquitto (see README).

Usage::

    async with EmbeddedBroker("127.0.0.1", 0) as broker:
        print(broker.port)
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType

from amqtt.broker import Broker
from amqtt.errors import BrokerError as _AmqttBrokerError

from forewarn.ports import ListenError, cannot_listen, free_port, port_in_use

# free_port and port_in_use live in forewarn.ports; named here too for older imports
__all__ = ["BrokerError", "EmbeddedBroker", "free_port", "port_in_use"]


class BrokerError(ListenError):
    """The embedded broker cannot listen where it was asked to (one line: where and why)."""


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
        amqtt_log = logging.getLogger("amqtt.broker")
        level = amqtt_log.level
        # a failed start is logged with its traceback before it is raised: say it in one line
        amqtt_log.setLevel(logging.CRITICAL)
        try:
            await self._broker.start()
        except _AmqttBrokerError as exc:
            self._broker = None
            why = cannot_listen("the embedded MQTT broker", self.host, self.port,
                                exc.__cause__ or exc)
            raise BrokerError(str(why)) from exc
        finally:
            amqtt_log.setLevel(level)
        return self

    def in_flight(self) -> int:
        """Messages the broker is still delivering: sent and not acknowledged, or queued."""
        broker = self._broker
        if broker is None:
            return 0
        # amqtt keeps no public count: its sessions' unacknowledged deliveries and its
        # broadcast tasks are what it still has to finish
        sent = sum(len(session.inflight_out) for session, _ in broker._sessions.values())
        return sent + sum(not task.done() for task in broker._tasks_queue)

    async def drained(self, timeout_s: float = 5.0) -> bool:
        """Wait until every message is delivered and acknowledged; False after ``timeout_s``.

        Call it before a subscriber disconnects: amqtt cancels the deliveries still waiting
        for that client's acknowledgement and logs a warning when it then arrives.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.in_flight() and loop.time() < deadline:
            await asyncio.sleep(0.01)
        return not self.in_flight()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None
