"""Servers for the integration tests: VictoriaMetrics and a Flux stand-in (see tests/servers/).

Each server is started once per session on a free 127.0.0.1 port in a temp dir and always
stopped; tests keep apart by writing under a unique tenant (the ``tenant`` fixture).
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# tests/ is not an installed package; make ``tests.servers`` importable
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.servers.influx_query import InfluxQueryServer, VictoriaBridge  # noqa: E402
from tests.servers.victoria import VictoriaMetrics, victoria_metrics_binary  # noqa: E402


@pytest.fixture(scope="session")
def victoria(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VictoriaMetrics]:
    """A VictoriaMetrics server shared by the session (tests must not stop it)."""
    if victoria_metrics_binary() is None:
        pytest.skip("victoria-metrics not installed (Debian package victoria-metrics)")
    with VictoriaMetrics(tmp_path_factory.mktemp("victoria")) as vm:
        yield vm


@pytest.fixture
def own_victoria(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    """A VictoriaMetrics server of one test's own, which the test may stop and start."""
    if victoria_metrics_binary() is None:
        pytest.skip("victoria-metrics not installed (Debian package victoria-metrics)")
    with VictoriaMetrics(tmp_path / "victoria") as vm:
        yield vm


@pytest.fixture(scope="session")
def influx_bridge(victoria: VictoriaMetrics) -> Iterator[InfluxQueryServer]:
    """One URL for the InfluxDB store: writes pass to VictoriaMetrics, Flux reads are answered
    from what VictoriaMetrics stored."""
    with InfluxQueryServer(VictoriaBridge(victoria), write_to=victoria.url) as server:
        yield server


@pytest.fixture
def tenant() -> str:
    """A tenant name no other test uses."""
    return f"t{uuid.uuid4().hex[:12]}"
