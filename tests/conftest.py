"""Fixtures shared by the whole suite: real servers started on free 127.0.0.1 ports.

A test that needs a server skips with a clear reason only when the server's Debian package is
missing (``make test`` installs it first, so under make nothing skips).
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

# No per-example deadline: the machines are shared and a slow example is not a failure. On CI
# (CI=true) examples are derived from each test instead of drawn at random, so a landing never
# hangs on a new random draw; locally every run explores new examples.
settings.register_profile("forewarn", deadline=None)
settings.register_profile("ci", parent=settings.get_profile("forewarn"), derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "forewarn")

# tests/ is not an installed package; make ``tests.servers`` importable everywhere
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.servers.mosquitto import Mosquitto, mosquitto_binary  # noqa: E402


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """A mosquitto broker shared by the session; tests keep apart by tenant (see ``tenant``)."""
    if mosquitto_binary() is None:
        pytest.skip("mosquitto not installed (Debian package mosquitto; make test installs it)")
    with Mosquitto(tmp_path_factory.mktemp("mosquitto")) as broker:
        yield broker


@pytest.fixture
def unique_tenant() -> str:
    """A tenant name no other test uses, so tests sharing a server never see each other's data."""
    return f"t{uuid.uuid4().hex[:10]}"
