"""A device bound to its tenant at the broker: its own block in a Mosquitto ACL file, with the
literal tenant in every topic (issue 16.4).

The shipped ACL (``deploy/mosquitto/acl``) pins a device to its own id with ``%u`` patterns but
matches the tenant with ``+``: a device could publish under another tenant. A device added
with ``forewarn devices add --tenant acme --acl-file FILE`` gets instead::

    # forewarn device hp-0001 (tenant acme)
    user hp-0001
    topic write forewarn/v1/acme/hp-0001/telemetry
    ...
    topic read forewarn/v1/acme/hp-0001/config/desired
    topic read forewarn/v1/_ingest/flow

and the ``pattern`` lines with ``+`` must go from that file (the broker grants a topic when any
line allows it). Re-adding a device replaces its block; other lines are kept as they are. A new
file starts with the core service's user (``forewarn-core``: reads everything of forewarn,
writes desired configs and the ingest bridge's hold, :data:`edge.schema.INGEST_FLOW_TOPIC`,
which every device reads).

>>> print(device_block("hp-1", "acme"))
# forewarn device hp-1 (tenant acme)
user hp-1
topic write forewarn/v1/acme/hp-1/telemetry
topic write forewarn/v1/acme/hp-1/event
topic write forewarn/v1/acme/hp-1/status
topic write forewarn/v1/acme/hp-1/config/reported
topic read forewarn/v1/acme/hp-1/config/desired
topic read forewarn/v1/_ingest/flow
<BLANKLINE>
>>> text = "user forewarn-core\\ntopic read forewarn/v1/#\\n\\n" + device_block("hp-1", "old")
>>> print(with_device(text, "hp-1", "acme").count("tenant old"), tenant_patterns(text))
0 []
"""

from __future__ import annotations

from pathlib import Path

from edge.names import NAME_RE
from edge.schema import INGEST_FLOW_TOPIC, TOPIC_ROOT
from forewarn.devices.files import locked, replace_file
from forewarn.errors import ConfigError

__all__ = ["NEW_FILE", "bind_device", "device_block", "tenant_patterns", "with_device"]

_WRITES = ("telemetry", "event", "status", "config/reported")
#: the start of a new ACL file: the core service's user
NEW_FILE = """\
# Mosquitto ACL written by `forewarn devices add --tenant`: every device bound to its tenant.
# The core service reads everything of forewarn and writes desired configs.
user forewarn-core
topic read forewarn/v1/#
topic write forewarn/v1/+/+/config/desired
topic write forewarn/v1/_ingest/flow
"""
_READS = ("config/desired",)


def device_block(device_id: str, tenant: str) -> str:
    """The ACL lines of one device bound to ``tenant`` (ending in a newline)."""
    lines = [f"# forewarn device {device_id} (tenant {tenant})", f"user {device_id}"]
    lines += [f"topic write {TOPIC_ROOT}/{tenant}/{device_id}/{kind}" for kind in _WRITES]
    lines += [f"topic read {TOPIC_ROOT}/{tenant}/{device_id}/{kind}" for kind in _READS]
    lines.append(f"topic read {INGEST_FLOW_TOPIC}")  # the ingest bridge's hold (docs/scaling.md)
    return "\n".join(lines) + "\n"


def with_device(text: str, device_id: str, tenant: str) -> str:
    """``text`` (an ACL file) with the device's block replaced, or added at the end."""
    kept: list[str] = []
    skipping = False
    for line in text.splitlines():
        words = line.split()
        starts_block = line.startswith("# forewarn device ") or words[:1] in (["user"],
                                                                              ["pattern"])
        if starts_block:
            skipping = (line.startswith(f"# forewarn device {device_id} ")
                        or words == ["user", device_id])
        if not skipping:
            kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    head = "\n".join(kept) + "\n\n" if kept else ""
    return head + device_block(device_id, tenant)


def tenant_patterns(text: str) -> list[str]:
    """``pattern`` lines that match any tenant (``forewarn/v1/+/…``): they undo the binding."""
    return [line.strip() for line in text.splitlines()
            if line.split()[:1] == ["pattern"] and f"{TOPIC_ROOT}/+/" in line]


def bind_device(acl_file: Path, device_id: str, tenant: str) -> list[str]:
    """Write the device's block with its literal tenant into ``acl_file`` (created if missing),
    under a lock, atomically; returns the ``pattern`` lines of the file that still let any
    device publish under any tenant (the caller warns about them)."""
    for name, value in (("device id", device_id), ("tenant", tenant)):
        if not NAME_RE.fullmatch(value):
            raise ConfigError(f"{name} {value!r} is not a valid name (letters, digits, _.-)")
    acl_file.parent.mkdir(parents=True, exist_ok=True)
    with locked(acl_file):
        try:
            text = acl_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = NEW_FILE
        # readable by the broker, which may run as its own user; nothing secret in it
        replace_file(acl_file, with_device(text, device_id, tenant), new_mode=0o644)
    return tenant_patterns(text)
