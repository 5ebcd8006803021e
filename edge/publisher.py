"""MQTT 5 publisher on paho-mqtt: QoS 1, a bounded in-flight window, waits for PUBACKs.

>>> pub = MqttPublisher("hp-1", host="127.0.0.1", port=1883)
>>> pub.client_id
'hp-1'
"""

from __future__ import annotations

import threading
from collections import deque

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.errors import PublishError

__all__ = ["MqttPublisher"]


class MqttPublisher:
    """One device's MQTT connection, blocking: the synchronous path without a disk queue.

    ``publish`` blocks while ``max_inflight`` messages await PUBACK, so paho's own queue never
    overflows (it refuses silently above its limit). The store-and-forward path is
    :class:`edge.uplink.Uplink`."""

    def __init__(
        self,
        client_id: str,
        host: str,
        port: int,
        username: str | None = None,
        password: str | None = None,
        max_inflight: int = 20,
        timeout_s: float = 30.0,
        protocol: str = "5",
    ) -> None:
        self.client_id = client_id
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self.max_inflight = max_inflight
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            # "3.1.1" for brokers without MQTT 5 (the embedded amqtt broker of the demo)
            protocol=mqtt.MQTTv311 if protocol == "3.1.1" else mqtt.MQTTv5,
        )
        if username is not None:
            self._client.username_pw_set(username, password)
        self._client.max_inflight_messages_set(max_inflight)
        self._client.max_queued_messages_set(0)
        self._connected = threading.Event()
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._pending: deque[mqtt.MQTTMessageInfo] = deque()
        self.published = 0

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object,
                    reason: object, properties: object) -> None:
        if not getattr(reason, "is_failure", False):
            self._connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object,
                       reason: object, properties: object) -> None:
        self._connected.clear()

    def connect(self) -> None:
        """Connect and start paho's network thread; raise :class:`PublishError` on failure."""
        try:
            self._client.connect(self.host, self.port, keepalive=30)
        except OSError as exc:
            raise PublishError(f"cannot reach broker {self.host}:{self.port}: {exc}") from exc
        self._client.loop_start()
        if not self._connected.wait(self.timeout_s):
            self.close()
            raise PublishError(f"broker {self.host}:{self.port} did not accept {self.client_id}")

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        """Publish with QoS 1; returns once the in-flight window has room."""
        while len(self._pending) >= self.max_inflight:
            self._wait_oldest()
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise PublishError(f"publish to {topic} refused: {mqtt.error_string(info.rc)}")
        self._pending.append(info)
        self.published += 1

    def _wait_oldest(self) -> None:
        info = self._pending[0]
        try:
            info.wait_for_publish(self.timeout_s)
        except (RuntimeError, ValueError) as exc:
            raise PublishError(f"publish failed: {exc}") from exc
        if not info.is_published():
            raise PublishError(f"no PUBACK within {self.timeout_s} s")
        self._pending.popleft()

    def drain(self) -> None:
        """Wait until every published message is acknowledged."""
        while self._pending:
            self._wait_oldest()

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self._client.disconnect()
        self._client.loop_stop()
