"""``forewarn devices add DEVICE_ID``: give a device its own broker credentials.

Writes (or replaces) the device's line in a mosquitto password file, hashed the way mosquitto 2
does it (``$7$``: PBKDF2-HMAC-SHA512, 12-byte salt), so ``mosquitto_passwd`` is not needed on the
machine that provisions devices. The username is the device id: the broker's ACL
(``deploy/mosquitto/acl``, ``pattern write forewarn/v1/+/%u/...``) then lets the device publish
only under its own topics. Send mosquitto a SIGHUP to reload the file.

``--tenant T --acl-file FILE`` also binds the device to its tenant at the broker: it writes
(or replaces) the device's block in a mosquitto ACL file with the literal tenant, so the
device may publish only under ``forewarn/v1/T/<device>/...`` (core dead-letters a message
whose topic names another tenant than the registry's as ``tenant_mismatch`` too). Such a file
must not also hold the shipped ``pattern ... forewarn/v1/+/%u/...`` lines, which let a device
use any tenant; a new file starts with the core service's user only.

>>> print(acl_block("hp-0001", "acme"))  # doctest: +ELLIPSIS
# device hp-0001 of tenant acme (forewarn devices add --tenant)
user hp-0001
topic write forewarn/v1/acme/hp-0001/telemetry
...
topic read forewarn/v1/acme/hp-0001/config/desired

>>> line = password_line("hp-0001", "s3cret", salt=bytes(12), iterations=101)
>>> line.split("$")[:3]
['hp-0001:', '7', '101']
>>> verify_password_line(line, "s3cret"), verify_password_line(line, "wrong")
(True, False)
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import os
import re
import secrets
import sys
import tempfile
from pathlib import Path
from typing import Any

from edge.names import NAME_RE
from forewarn.errors import ConfigError

__all__ = ["acl_block", "add_device", "add_device_acl", "password_line", "register",
           "verify_password_line"]

#: PBKDF2 rounds: mosquitto_passwd uses 101; more is slower to brute-force and still costs the
#: broker only about a millisecond per connect
DEFAULT_ITERATIONS = 1000


def password_line(username: str, password: str, *, salt: bytes | None = None,
                  iterations: int = DEFAULT_ITERATIONS) -> str:
    """One mosquitto password-file line (without newline)."""
    salt = secrets.token_bytes(12) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return (f"{username}:$7${iterations}${base64.b64encode(salt).decode()}"
            f"${base64.b64encode(digest).decode()}")


def verify_password_line(line: str, password: str) -> bool:
    """Whether ``password`` matches a ``$7$`` password-file line."""
    _, _, hashed = line.partition(":")
    parts = hashed.split("$")
    if len(parts) != 5 or parts[1] != "7":
        return False
    salt, expected = base64.b64decode(parts[3]), base64.b64decode(parts[4])
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(parts[2]))
    return hmac.compare_digest(digest, expected)


def add_device(password_file: Path, device_id: str, password: str | None = None,
               iterations: int = DEFAULT_ITERATIONS) -> str:
    """Add or replace ``device_id`` in ``password_file``; returns the password (new if None).

    The file is rewritten atomically with mode 0600.
    """
    if not NAME_RE.fullmatch(device_id):
        raise ConfigError(f"device id {device_id!r} is not a valid name (letters, digits, _.-)")
    password = password or secrets.token_urlsafe(18)
    lines = password_file.read_text().splitlines() if password_file.exists() else []
    kept = [line for line in lines if line.split(":", 1)[0] != device_id]
    kept.append(password_line(device_id, password, iterations=iterations))
    password_file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=password_file.parent, prefix=".passwd-")
    try:
        with os.fdopen(fd, "w") as out:
            out.write("\n".join(kept) + "\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, password_file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return password


_ACL_HEADER = """\
# mosquitto ACL written by `forewarn devices add --tenant`: every device bound to its tenant.
# The core service reads everything of forewarn and writes desired configs.
user forewarn-core
topic read forewarn/v1/#
topic write forewarn/v1/+/+/config/desired
"""
#: the shipped ACL's lines that let a device publish under any tenant
_ANY_TENANT = re.compile(r"^\s*pattern\s+(write|readwrite)\s+forewarn/v1/\+/%u/", re.MULTILINE)


def acl_block(device_id: str, tenant: str) -> str:
    """The ACL lines that let ``device_id`` use its own topics under ``tenant`` only."""
    own = f"forewarn/v1/{tenant}/{device_id}"
    return "\n".join([
        f"# device {device_id} of tenant {tenant} (forewarn devices add --tenant)",
        f"user {device_id}",
        *(f"topic write {own}/{kind}" for kind in ("telemetry", "event", "status",
                                                   "config/reported")),
        f"topic read {own}/config/desired",
    ])


def add_device_acl(acl_file: Path, device_id: str, tenant: str) -> bool:
    """Add or replace ``device_id``'s block in ``acl_file``, bound to ``tenant``.

    Returns False when the file still lets devices use any tenant (the shipped ``+``
    patterns), so the caller can warn. Rewritten atomically, like the password file.
    """
    for name, what in ((device_id, "device id"), (tenant, "tenant")):
        if not NAME_RE.fullmatch(name):
            raise ConfigError(f"{what} {name!r} is not a valid name (letters, digits, _.-)")
    text = acl_file.read_text() if acl_file.exists() else _ACL_HEADER
    blocks = text.rstrip("\n").split("\n\n")
    mine = f"user {device_id}"
    kept = [b for b in blocks if mine not in b.splitlines()]
    kept.append(acl_block(device_id, tenant))
    _write_atomically(acl_file, "\n\n".join(kept) + "\n", mode=0o644)
    return _ANY_TENANT.search(text) is None


def _write_atomically(path: Path, text: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def register(subparsers: Any) -> None:
    """Add the ``devices`` command."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "devices", help="manage device credentials for the broker",
        description="Device identity: one broker username/password per device.",
    )
    actions = parser.add_subparsers(dest="devices_action", metavar="ACTION", required=True)
    add = actions.add_parser(
        "add", help="add or replace a device in a mosquitto password file",
        description="Writes the device's password-file entry (username = device id). "
        "Prints the password when it was generated.",
    )
    add.add_argument("device_id", help="the device id, also its MQTT username")
    add.add_argument("--password-file", type=Path, required=True,
                     help="mosquitto password file to update (created if missing)")
    add.add_argument("--password", default=None,
                     help="the password (default: generate one and print it)")
    add.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS,
                     help=f"PBKDF2 rounds (default {DEFAULT_ITERATIONS})")
    add.add_argument("--tenant", default=None,
                     help="bind the device to this tenant: write its block with the literal "
                     "tenant into --acl-file")
    add.add_argument("--acl-file", type=Path, default=None,
                     help="mosquitto ACL file to update with --tenant (created if missing)")
    add.set_defaults(func=_add)


def _add(args: argparse.Namespace) -> int:
    if (args.tenant is None) != (args.acl_file is None):
        raise ConfigError("--tenant and --acl-file go together")
    password = add_device(args.password_file, args.device_id, args.password, args.iterations)
    if args.tenant is not None and not add_device_acl(args.acl_file, args.device_id,
                                                      args.tenant):
        print(f"forewarn: warning: {args.acl_file} still has 'pattern ... forewarn/v1/+/%u/' "
              "lines, which let every device publish under any tenant; remove them",
              file=sys.stderr)
    if args.password is None:
        print(f"{args.device_id} {password}")
    return 0
