"""What core knows of the devices, for ``forewarn devices show / list / config set``: the device
book in the case database, the tenant a device belongs to, and a device's row as JSON.

>>> from forewarn.settings import Settings
>>> book = open_device_book(Settings(cases={"url": "sqlite://"}))
>>> device_tenant(book, "hp-0001", None, "acme")
'acme'
"""

from __future__ import annotations

import json
from typing import Any

from forewarn.casedb import open_case_db
from forewarn.errors import ConfigError
from rules.lifecycle import DeviceBook

__all__ = ["device_tenant", "open_device_book", "row_json"]


def open_device_book(settings: Any) -> DeviceBook:
    """The device book of the case database the settings name (``[cases] url``)."""
    return DeviceBook(open_case_db(settings.cases.url))


def device_tenant(book: DeviceBook, device_id: str, tenant: str | None, default: str) -> str:
    """``tenant`` if given, else the one core saw the device in, else ``default``;
    :class:`ConfigError` when core saw it in several."""
    if tenant:
        return str(tenant)
    rows = book.find(device_id)
    if len(rows) > 1:
        tenants = ", ".join(sorted(row.tenant for row in rows))
        raise ConfigError(f"{device_id} is known in several tenants ({tenants}): "
                          "give --tenant")
    return str(rows[0].tenant) if rows else str(default)


def row_json(row: Any) -> dict[str, Any]:
    """A device's row as the JSON ``forewarn devices show --json`` prints."""
    return {
        "tenant": row.tenant, "device_id": row.device_id, "product": row.product,
        "state": row.state, "reason": row.reason, "since": row.since,
        "last_seen": row.last_seen, "boot_id": row.boot_id, "firmware": row.firmware,
        "queue_depth": row.queue_depth, "dropped_samples": row.dropped_samples,
        "last_event": row.last_event, "last_event_severity": row.last_event_severity,
        "last_event_at": row.last_event_at,
        "desired": json.loads(row.desired_json) if row.desired_json else None,
        "reported": json.loads(row.reported_json) if row.reported_json else None,
        "reported_at": row.reported_at,
    }
