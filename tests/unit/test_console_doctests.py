"""The usage examples in the console's, tokens', metrics' and case actions' docstrings still run.

``make test`` collects only ``tests/``, so the doctests of these modules run from here.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import forewarn.console

MODULES = sorted(
    [m.name for m in pkgutil.walk_packages(forewarn.console.__path__, "forewarn.console.")]
    + ["forewarn.console", "forewarn.auth", "forewarn.metrics", "rules.case_actions"]
)


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
