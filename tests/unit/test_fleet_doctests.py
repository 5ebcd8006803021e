"""The usage examples in the simulator's and the evaluation's docstrings still run.

``make test`` collects only ``tests/``, so the doctests of these modules run from here.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import firmware_sim

MODULES = sorted(
    [m.name for m in pkgutil.walk_packages(firmware_sim.__path__, "firmware_sim.")]
    + ["firmware_sim", "forewarn.sim_evaluate"]
)


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
