"""Broker credentials of devices: lines of a Mosquitto password file, written safely.

A line is ``username:$7$<iterations>$<salt>$<hash>``, Mosquitto 2's PBKDF2-HMAC-SHA512 format
(``mosquitto_passwd``'s default): a 12-byte salt and a 64-byte hash, both base64, and the
iteration count in the line, so the broker verifies whatever count the line says. The
username is the device id: the broker's ACL (``deploy/mosquitto/acl``,
``pattern write forewarn/v1/+/%u/...``) then lets the device publish only under its own
topics. Send Mosquitto a SIGHUP to reload the file.

>>> line = password_line("hp-0001", "s3cret", salt=bytes(12), iterations=1000)
>>> line.split("$")[:3]
['hp-0001:', '7', '1000']
>>> verify_password_line(line, "s3cret"), verify_password_line(line, "wrong")
(True, False)

:func:`add_device` rewrites the file under an exclusive lock (``fcntl.flock`` on
``<file>.lock``), through a temporary file that is fsynced and renamed over the old one, and
fsyncs the directory: two provisioning runs at once lose no device, and a crash or power cut
leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from pathlib import Path
from typing import IO

from edge.names import NAME_RE
from forewarn.devices.files import locked, replace_file
from forewarn.errors import ConfigError

__all__ = [
    "DEFAULT_ITERATIONS",
    "MIN_ITERATIONS",
    "add_device",
    "generate_password",
    "password_line",
    "read_password",
    "verify_password_line",
]

#: PBKDF2 rounds for a new line. mosquitto_passwd 2.0 uses 101, which an operator-chosen
#: password does not survive if the file leaks; 100 000 costs the broker about 0.1 s of CPU
#: per connect (a device connects once and stays connected)
DEFAULT_ITERATIONS = 100_000
#: fewer rounds are refused unless asked for explicitly (tests and benchmarks use a few)
MIN_ITERATIONS = 100_000


def generate_password() -> str:
    """A random password (144 bits, URL-safe)."""
    return secrets.token_urlsafe(18)


def password_line(username: str, password: str, *, salt: bytes | None = None,
                  iterations: int = DEFAULT_ITERATIONS) -> str:
    """One Mosquitto password-file line (without newline)."""
    salt = secrets.token_bytes(12) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return (f"{username}:$7${iterations}${base64.b64encode(salt).decode()}"
            f"${base64.b64encode(digest).decode()}")


def verify_password_line(line: str, password: str) -> bool:
    """Whether ``password`` matches a ``$7$`` password-file line."""
    _, _, hashed = line.partition(":")
    parts = hashed.split("$")
    if len(parts) != 5 or parts[1] != "7" or not parts[2].isdigit():
        return False
    salt, expected = base64.b64decode(parts[3]), base64.b64decode(parts[4])
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(parts[2]))
    return hmac.compare_digest(digest, expected)


def read_password(source: IO[str], where: str) -> str:
    """The password on the first line of ``source`` (standard input or a file).

    Only the line end is taken off: spaces are part of a password. :class:`ConfigError` for an
    empty one.

    >>> import io
    >>> read_password(io.StringIO("s3cret  \\nignored\\n"), "stdin")
    's3cret  '
    """
    password = source.readline().rstrip("\r\n")
    if not password:
        raise ConfigError(f"no password on the first line of {where}")
    return password


def add_device(password_file: Path, device_id: str, password: str | None = None,
               iterations: int = DEFAULT_ITERATIONS) -> str:
    """Add or replace ``device_id`` in ``password_file``; returns the password (a new one if
    None). Other users' lines are kept as they are."""
    if not NAME_RE.fullmatch(device_id):
        raise ConfigError(f"device id {device_id!r} is not a valid name (letters, digits, _.-)")
    if iterations < 1:
        raise ConfigError("iterations must be at least 1")
    password = password or generate_password()
    # hashed before taking the lock: the slow part must not hold up another provisioning run
    line = password_line(device_id, password, iterations=iterations)
    password_file.parent.mkdir(parents=True, exist_ok=True)
    with locked(password_file):
        try:
            lines = password_file.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            lines = []
        kept = [x for x in lines if x.split(":", 1)[0] != device_id]
        replace_file(password_file, "\n".join([*kept, line]) + "\n")
    return password
