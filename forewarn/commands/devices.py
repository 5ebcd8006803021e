"""``forewarn devices``: broker credentials, remote config and lifecycle of devices.

The logic is in :mod:`forewarn.devices` (credentials, desired config) and
:mod:`rules.lifecycle` (the devices table core keeps); this module only parses arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
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
  forewarn devices add hp-0002 --mosquitto-passwd /etc/mosquitto/forewarn.passwd \\
      --tenant acme --acl-file /etc/mosquitto/forewarn.acl
  printf '%s\\n' "$CORE_PASSWORD" | forewarn devices add forewarn-core \\
      --mosquitto-passwd /etc/mosquitto/forewarn.passwd --password-stdin
"""


def register(subparsers: Any) -> None:
    """Add the ``devices`` command."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "devices", help="manage device credentials for the broker",
        description="Device identity (one broker username/password per device), remote "
        "config and lifecycle (online/offline, last seen, reported config).",
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
    add.add_argument("--tenant", default=None,
                     help="bind the device to this tenant: with --acl-file, its ACL block names "
                     "the literal tenant, so it cannot publish under another")
    add.add_argument("--acl-file", type=Path, default=None, metavar="FILE",
                     help="the Mosquitto ACL file to write the device's block into (needs "
                     "--tenant; created with the core service's user if missing; remove the "
                     "shipped '+' tenant patterns from an existing one)")
    # gone: a password on the command line shows in ps and the shell history
    add.add_argument("--password", default=None, help=argparse.SUPPRESS)
    add.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS,
                     help=f"PBKDF2 rounds (default and minimum {DEFAULT_ITERATIONS:,})")
    add.set_defaults(func=_add)
    _register_lifecycle(actions)


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
    if (args.acl_file is None) != (args.tenant is None):
        raise ConfigError("--tenant and --acl-file go together: the tenant is bound in the ACL")
    given = _password(args)
    password = add_device(args.mosquitto_passwd, args.device_id, given, args.iterations)
    if args.acl_file is not None:
        from forewarn.devices.acl import bind_device

        for line in bind_device(args.acl_file, args.device_id, args.tenant):
            print(f"forewarn: warning: {args.acl_file}: '{line}' lets every device publish "
                  "under any tenant; remove it to bind devices to their tenant",
                  file=sys.stderr)
    if given is None:
        print(f"{args.device_id} {password}", flush=True)
    return 0


def _register_lifecycle(actions: Any) -> None:
    config = actions.add_parser(
        "config", help="remote config: publish a device's desired config",
        description="The desired config core publishes (retained) for a device; the agent "
        "applies it and reports back on config/reported (see docs/edge.md).",
    )
    config_actions = config.add_subparsers(dest="config_action", metavar="ACTION",
                                           required=True)
    from forewarn.devices.config import SETTABLE_KEYS

    config_set = config_actions.add_parser(
        "set", help="change keys of a device's desired config",
        description="Reads the device's retained desired config from the broker, changes "
        "the given keys (KEY=none removes one), raises its revision and publishes it "
        "retained (QoS 1) as [mqtt] username (the ACL lets forewarn-core write "
        "config/desired). Keys: " + ", ".join(SETTABLE_KEYS) + ".",
    )
    config_set.add_argument("device_id", help="the device")
    config_set.add_argument("changes", nargs="+", metavar="KEY=VALUE",
                            help="settings to change, e.g. sample_period_s=30")
    _common(config_set)
    config_set.add_argument("--wait", type=float, default=0.0, metavar="S",
                            help="wait up to S seconds for the device's report")
    config_set.set_defaults(func=_config_set)
    show = actions.add_parser(
        "show", help="a device's lifecycle: online/offline, last seen, desired and reported "
        "config", description="What core knows of a device (from the case database).")
    show.add_argument("device_id", help="the device")
    _common(show)
    show.add_argument("--json", action="store_true", help="one JSON object")
    show.set_defaults(func=_show)
    listing = actions.add_parser("list", help="every device core has heard from",
                                 description="One line per device: state, since, last seen.")
    _common(listing)
    listing.set_defaults(func=_list)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", dest="devices_config", type=Path, default=None,
                        metavar="TOML", help="configuration file ([mqtt], [cases] url, tenant)")
    parser.add_argument("--tenant", default=None,
                        help="the device's tenant (default: the one core saw it in, else "
                        "the configured tenant)")


def _settings(args: argparse.Namespace) -> Any:
    from forewarn.settings import load_settings

    path = args.devices_config or (Path(args.config) if getattr(args, "config", None) else None)
    return load_settings(path)


def _book(settings: Any) -> Any:
    from forewarn.devices.book import open_device_book

    return open_device_book(settings)


def _tenant(args: argparse.Namespace, settings: Any, book: Any) -> str:
    from forewarn.devices.book import device_tenant

    return device_tenant(book, args.device_id, args.tenant, settings.tenant)


def _config_set(args: argparse.Namespace) -> int:
    import asyncio

    from forewarn.devices.config import parse_changes, publish_desired

    changes = parse_changes(args.changes)
    settings = _settings(args)
    book = _book(settings)
    try:
        tenant = _tenant(args, settings, book)
        desired, report = asyncio.run(publish_desired(
            settings.mqtt, tenant, args.device_id, changes, report_wait_s=args.wait))
        book.set_desired(tenant, args.device_id, desired)
    finally:
        book.engine.dispose()
    print(f"{tenant}/{args.device_id}: desired config revision {desired['revision']} "
          f"published: {json.dumps(desired, sort_keys=True)}", flush=True)
    if args.wait > 0:
        if report is None:
            print(f"no report of revision {desired['revision']} within {args.wait:g} s "
                  "(the device applies it when it connects)", file=sys.stderr)
            return 1
        print(f"reported: {report.status}"
              + (f" ({report.reason})" if report.reason else ""), flush=True)
        return 0 if report.status == "applied" else 1
    return 0


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _show(args: argparse.Namespace) -> int:
    from forewarn.devices.book import row_json

    settings = _settings(args)
    book = _book(settings)
    try:
        rows = book.find(args.device_id, args.tenant)
    finally:
        book.engine.dispose()
    if not rows:
        raise ConfigError(f"no device {args.device_id!r} in {settings.cases.url}"
                          + (f" (tenant {args.tenant})" if args.tenant else ""))
    for row in rows:
        info = row_json(row)
        if args.json:
            print(json.dumps(info, sort_keys=True))
            continue
        state = row.state + (f" ({row.reason})" if row.reason else "")
        print(f"{row.tenant}/{row.device_id}  {row.product or '?'}")
        print(f"  state       {state} since {_when(row.since)}")
        print(f"  last seen   {_when(row.last_seen)}")
        print(f"  firmware    {row.firmware or '-'}  boot {row.boot_id or '-'}  "
              f"queue {row.queue_depth}  dropped samples {row.dropped_samples}")
        if row.last_event:
            print(f"  last event  {row.last_event} ({row.last_event_severity}) at "
                  f"{_when(row.last_event_at)}")
        print(f"  desired     {json.dumps(info['desired']) if info['desired'] else '-'}")
        print(f"  reported    {json.dumps(info['reported']) if info['reported'] else '-'}"
              + (f" at {_when(row.reported_at)}" if row.reported_at else ""))
    return 0


def _list(args: argparse.Namespace) -> int:
    settings = _settings(args)
    book = _book(settings)
    try:
        rows = book.all(args.tenant)
    finally:
        book.engine.dispose()
    for row in rows:
        state = row.state + (f" ({row.reason})" if row.reason else "")
        print(f"{row.tenant}/{row.device_id}\t{state}\tsince {_when(row.since)}\t"
              f"last seen {_when(row.last_seen)}")
    if not rows:
        print(f"no devices in {settings.cases.url}", file=sys.stderr)
    return 0
