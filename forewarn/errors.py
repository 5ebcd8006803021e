"""The root of forewarn's exception tree, and the package trees the shell reports beside it.

::

    ForewarnError              anything the application shell raises on purpose
    ├── ConfigError            a configuration or rules file that cannot be used
    └── ScoreError             a file or option ``forewarn score`` cannot use
    EdgeError                  edge/errors.py: PublishError, TopicError, PayloadError
    CoreError                  core/errors.py: LimitsFileError, DecodeError,
                               StoreError → StoreRejectedError
    RuleError                  rules/errors.py: RuleFileError, NotifyError,
                               CaseActionError → CaseNotFoundError, CaseStateError

Package errors do not derive from ForewarnError (the packages do not import the shell); the
shell (:func:`forewarn.cli.main`) reports every one of :data:`USER_ERRORS` as one line on stderr
and exit code 2, never a traceback.
"""

from __future__ import annotations

from pathlib import Path

from core.errors import CoreError
from edge.errors import EdgeError
from rules.errors import RuleError

__all__ = ["USER_ERRORS", "ConfigError", "ForewarnError", "unusable_path"]


class ForewarnError(Exception):
    """Anything the application shell reports to a user as an error (exit code 2)."""


class ConfigError(ForewarnError):
    """A configuration or rules file that cannot be used; the message says where and why."""


#: what the shell reports as one line and exit code 2: the shell's own tree and every package's
USER_ERRORS: tuple[type[Exception], ...] = (ForewarnError, EdgeError, CoreError, RuleError)


def unusable_path(key: str, path: Path | str, exc: BaseException) -> ConfigError:
    """The one-line error for a file or folder the configuration names (``key``) that cannot be
    made or opened: the key, the path and the system's reason (and the path it tripped on, when
    another, e.g. a file where a folder should be).

    >>> str(unusable_path("[core] state_dir", "/srv/x/state",
    ...                   NotADirectoryError(20, "Not a directory", "/srv/x")))
    '[core] state_dir /srv/x/state: Not a directory (/srv/x)'
    """
    why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    tripped = getattr(exc, "filename", None)
    if tripped is not None and str(tripped) != str(path):
        why = f"{why} ({tripped})"
    return ConfigError(f"{key} {path}: {why}")
