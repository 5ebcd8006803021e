"""Brokers for the edge tests: mosquitto with the shipped ACL and a password file per test.

The broker helper lives in ``benchmarks/edge_broker.py`` (the outage benchmark uses it too).
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from forewarn.devices.passwords import add_device

ROOT = Path(__file__).resolve().parents[3]
ACL = ROOT / "deploy" / "mosquitto" / "acl"


def load_benchmark(name: str) -> ModuleType:
    """Import ``benchmarks/<name>.py`` (benchmarks is not a package)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class SecuredBroker:
    """A running mosquitto with password file + ACL, and the credentials it knows."""

    broker: object
    port: int
    passwords: dict[str, str]


@pytest.fixture
def secured_broker(tmp_path: Path) -> Iterator[SecuredBroker]:
    """mosquitto with ``deploy/mosquitto/acl``; devices hp-a, hp-b and the user forewarn-core."""
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.skip("mosquitto not installed (Debian package mosquitto)")
    broker_module = load_benchmark("edge_broker")
    passwd = tmp_path / "passwd"
    passwords = {user: f"pw-{user}" for user in ("hp-a", "hp-b", "forewarn-core")}
    for user, password in passwords.items():
        add_device(passwd, user, password, iterations=101)
    with broker_module.Mosquitto(password_file=passwd, acl_file=ACL) as broker:
        yield SecuredBroker(broker, broker.port, passwords)
