"""Sparkplug B births and deaths as device statuses, for core's lifecycle listener.

The ingest path decodes a Sparkplug message's readings (:mod:`core.mapping.sparkplug`); a
device's life is the lifecycle listener's (:mod:`core.lifecycle`), which hands statuses to the
rules' device book. :class:`SparkplugStatus` gives it the births and deaths of every
``format = "sparkplug"`` mapping: DBIRTH → the device online, DDEATH → the device offline, and
NDEATH (the edge node's last will) → every device born under that node offline, all with the
reason ``connection_lost`` (the device did not say goodbye; offline rules count it).

>>> from core.mapping.config import MappingConfig
>>> m = MappingConfig(name="plant", topic="spBv1.0/+tenant/#", format="sparkplug")
>>> status = SparkplugStatus([m])
>>> status.subscriptions
['spBv1.0/+/DBIRTH/+/+', 'spBv1.0/+/DDEATH/+/+', 'spBv1.0/+/NDEATH/+']
>>> [(e.device_id, e.state) for e in status.decode("spBv1.0/acme/DBIRTH/edge-1/hp-9", b"", 5.0)]
[('hp-9', 'online')]
>>> [(e.tenant, e.device_id, e.state, e.reason)
...  for e in status.decode("spBv1.0/acme/NDEATH/edge-1", b"", 9.0)]
[('acme', 'hp-9', 'offline', 'connection_lost')]
"""

from __future__ import annotations

from collections.abc import Sequence

from core.events import DeviceStatus
from core.mapping.config import MappingConfig
from core.mapping.sparkplug import SPARKPLUG_NAMESPACE
from edge.names import NAME_RE

__all__ = ["SparkplugStatus"]

_KEEP = 65536


class SparkplugStatus:
    """Births and deaths of the Sparkplug mappings' devices, as :class:`DeviceStatus`."""

    def __init__(self, mappings: Sequence[MappingConfig]) -> None:
        self.mappings = tuple(m for m in mappings if m.format == "sparkplug")
        #: (group, node) → the devices born under it (an NDEATH takes them all offline)
        self.devices: dict[tuple[str, str], set[str]] = {}

    @property
    def subscriptions(self) -> list[str]:
        """The filters for births and deaths (each once), of every Sparkplug group mapped."""
        groups: list[str] = []
        for mapping in self.mappings:
            levels = mapping.pattern.subscription.split("/")
            if levels[0] == SPARKPLUG_NAMESPACE:
                groups.append(levels[1] if len(levels) > 1 and levels[1] != "#" else "+")
        root = SPARKPLUG_NAMESPACE
        return [topic for group in dict.fromkeys(groups) for topic in (
            f"{root}/{group}/DBIRTH/+/+", f"{root}/{group}/DDEATH/+/+", f"{root}/{group}/NDEATH/+")]

    def decode(self, topic: str, payload: bytes, arrival: float) -> list[DeviceStatus]:
        """The statuses one birth or death gives (none for anything else or unmapped)."""
        del payload  # when it arrives is when it happened (a death is often a last will)
        for mapping in self.mappings:
            levels = mapping.pattern.match(topic)
            if levels is not None:
                break
        else:
            return []
        parts = topic.split("/")
        if len(parts) not in (4, 5):
            return []
        tenant = mapping.tenant or levels.get("tenant", "")
        group, kind, node = parts[1], parts[2], parts[3]
        if not NAME_RE.fullmatch(tenant):
            return []
        if kind == "NDEATH" and len(parts) == 4:
            devices = sorted(self.devices.pop((group, node), ()))
            return [DeviceStatus(tenant, d, "offline", arrival, reason="connection_lost")
                    for d in devices]
        if len(parts) != 5 or not NAME_RE.fullmatch(parts[4]):
            return []
        device = parts[4]
        if kind == "DBIRTH":
            if len(self.devices) >= _KEEP:
                self.devices.clear()
            self.devices.setdefault((group, node), set()).add(device)
            return [DeviceStatus(tenant, device, "online", arrival)]
        if kind == "DDEATH":
            self.devices.get((group, node), set()).discard(device)
            return [DeviceStatus(tenant, device, "offline", arrival, reason="connection_lost")]
        return []
