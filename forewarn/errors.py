"""The root of forewarn's exception tree.

::

    ForewarnError              anything forewarn raises on purpose
    ├── ConfigError            a configuration or rules file that cannot be used
    └── (per package)          edge.errors.EdgeError, core.errors.CoreError,
                               rules.errors.RuleError

Package errors do not derive from ForewarnError (the packages do not import the shell); the shell
translates them at its boundary.
"""

from __future__ import annotations

__all__ = ["ConfigError", "ForewarnError"]


class ForewarnError(Exception):
    """Anything the application shell reports to a user as an error (exit code 2)."""


class ConfigError(ForewarnError):
    """A configuration or rules file that cannot be used; the message says where and why."""
