"""``forewarn devices``: devices' broker credentials (the logic is in :mod:`forewarn.devices`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from forewarn.devices.passwords import (
    DEFAULT_ITERATIONS,
    MIN_ITERATIONS,
    add_device,
    read_password,
)
from forewarn.errors import ConfigError

__all__ = ["register"]

_ADD_DESCRIPTION = f"""\
Add or replace a device in a Mosquitto password file (username = device id), hashed the way
Mosquitto 2 does it ($7$, PBKDF2-HMAC-SHA512, {DEFAULT_ITERATIONS:,} rounds by default). The
file is rewritten under a lock, fsynced and renamed into place, keeping its owner and mode
(0600 when new). Reload Mosquitto afterwards (systemctl reload mosquitto).

The password comes from standard input (--password-stdin) or the first line of a file
(--password-file), never from the command line (where `ps` and the shell history would show
it). Without either, a password is generated and printed as "DEVICE_ID PASSWORD", the line
format `forewarn fleet --credentials` reads.
"""

_ADD_EPILOG = """\
examples:
  forewarn devices add hp-0001 --mosquitto-passwd /etc/mosquitto/forewarn.passwd
  printf '%s\\n' "$CORE_PASSWORD" | forewarn devices add forewarn-core \\
      --mosquitto-passwd /etc/mosquitto/forewarn.passwd --password-stdin
"""


def register(subparsers: Any) -> None:
    """Add the ``devices`` command."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "devices", help="manage device credentials for the broker",
        description="Device identity: one broker username/password per device.",
    )
    actions = parser.add_subparsers(dest="devices_action", metavar="ACTION", required=True)
    add = actions.add_parser(
        "add", help="add or replace a device in a Mosquitto password file",
        description=_ADD_DESCRIPTION, epilog=_ADD_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add.add_argument("device_id", help="the device id, also its MQTT username")
    add.add_argument("--mosquitto-passwd", type=Path, required=True, metavar="FILE",
                     help="the Mosquitto password file to update (created if missing)")
    source = add.add_mutually_exclusive_group()
    source.add_argument("--password-stdin", action="store_true",
                        help="read the password from the first line of standard input")
    source.add_argument("--password-file", type=Path, default=None, metavar="FILE",
                        help="read the password from the first line of FILE")
    # gone: a password on the command line shows in ps and the shell history
    add.add_argument("--password", default=None, help=argparse.SUPPRESS)
    add.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS,
                     help=f"PBKDF2 rounds (default and minimum {DEFAULT_ITERATIONS:,})")
    add.set_defaults(func=_add)


def _password(args: argparse.Namespace) -> str | None:
    if args.password is not None:
        raise ConfigError("--password is not accepted: the command line shows it to ps and the "
                          "shell history; use --password-stdin or --password-file")
    if args.password_stdin:
        return read_password(sys.stdin, "standard input")
    if args.password_file is not None:
        try:
            with args.password_file.open(encoding="utf-8") as source:
                return read_password(source, str(args.password_file))
        except OSError as exc:
            raise ConfigError(f"cannot read password file {args.password_file}: "
                              f"{exc.strerror}") from exc
    return None


def _add(args: argparse.Namespace) -> int:
    if args.iterations < MIN_ITERATIONS:
        raise ConfigError(f"--iterations {args.iterations} is below {MIN_ITERATIONS:,}: too "
                          "few for a password someone chose")
    given = _password(args)
    password = add_device(args.mosquitto_passwd, args.device_id, given, args.iterations)
    if given is None:
        print(f"{args.device_id} {password}", flush=True)
    return 0
