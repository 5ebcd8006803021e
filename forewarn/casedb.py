"""The case database: where it is and how to open it, the one way every command does.

It is the configuration's ``[cases] url``, or a demo run's ``cases.sqlite`` when a command is
given ``--demo-dir`` (``forewarn serve``, ``tokens``, ``outbox``, ``rules silence``…), or a URL
given outright (``outbox --db``).

>>> from forewarn.settings import Settings
>>> case_db_url(Settings())
'sqlite:///var/cases.sqlite'
>>> import tempfile
>>> with tempfile.TemporaryDirectory() as run:
...     _ = Path(run, "cases.sqlite").write_bytes(b"")
...     case_db_url(Settings(), demo_dir=Path(run)) == f"sqlite:///{run}/cases.sqlite"
True
>>> open_case_db("sqlite://").dialect.name
'sqlite'
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sqlalchemy import Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from forewarn.errors import ConfigError
from forewarn.settings import Settings
from rules.db import connect
from rules.errors import RuleError

__all__ = [
    "DEMO_CASES",
    "add_case_db_options",
    "case_db_url",
    "open_args_case_db",
    "open_case_db",
    "open_settings_case_db",
    "printable_url",
]

#: the case database's file name in a demo run's folder
DEMO_CASES = "cases.sqlite"


def case_db_url(settings: Settings, demo_dir: Path | None = None, url: str | None = None) -> str:
    """``url`` if given, else a demo run's database in ``demo_dir``, else ``[cases] url``.

    A ``demo_dir`` without a demo run in it is a :class:`ConfigError` (it would otherwise make
    a new, empty database beside the run a user meant).
    """
    if url:
        return url
    if demo_dir is not None:
        if not (demo_dir / DEMO_CASES).is_file():
            raise ConfigError(f"{demo_dir} holds no demo run (no {DEMO_CASES}; run "
                              "'forewarn demo' first)")
        return f"sqlite:///{demo_dir / DEMO_CASES}"
    return settings.cases.url


def open_case_db(url: str) -> Engine:
    """The case database at ``url`` (a SQLite file's folder is made); ConfigError if it fails."""
    file = make_url(url).database if url.startswith("sqlite") else None
    try:
        if file and file != ":memory:" and not file.startswith("file:"):
            Path(file).parent.mkdir(parents=True, exist_ok=True)
        return connect(url)
    except (OSError, SQLAlchemyError, RuleError) as exc:
        # the driver's own words (SQLAlchemy's wrapper adds the statement and a web link)
        why = getattr(exc, "orig", None) or exc
        raise ConfigError(f"cannot open the case database {printable_url(url)}: {why}") from exc


def printable_url(url: str) -> str:
    """``url`` as it may be printed: without its password.

    >>> printable_url("postgresql+psycopg://forewarn:s3cret@db/cases")
    'postgresql+psycopg://forewarn:***@db/cases'
    """
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return url.split("@")[-1] if "@" in url else url


def open_settings_case_db(settings: Settings, demo_dir: Path | None = None,
                          url: str | None = None) -> Engine:
    """:func:`open_case_db` at :func:`case_db_url`: what a command's options name."""
    return open_case_db(case_db_url(settings, demo_dir, url))


def add_case_db_options(parser: argparse.ArgumentParser, db: bool = True,
                        actions: tuple[argparse.ArgumentParser, ...] = ()) -> None:
    """``--demo-dir`` (and ``--db``) of a command that opens the case database, accepted
    before its action and after it (on each of ``actions``)."""
    for where in (parser, *actions):
        # an action's parser must not reset what was given before the action
        default = None if where is parser else argparse.SUPPRESS
        where.add_argument("--demo-dir", type=Path, default=default, metavar="DIR",
                           help="use a demo run's case database (e.g. var/demo, as 'forewarn "
                           "serve --demo-dir' does) instead of [cases] url")
        if db:
            where.add_argument("--db", default=default, metavar="URL",
                               help="case database URL (default: [cases] url of the "
                               "configuration)")


def open_args_case_db(args: argparse.Namespace) -> Engine:
    """The case database a command's ``--config``, ``--demo-dir`` and ``--db`` name."""
    from forewarn.settings import load_settings

    url = getattr(args, "db", None)
    demo_dir = getattr(args, "demo_dir", None)
    if url and demo_dir is not None:
        raise ConfigError("give --db or --demo-dir, not both")
    config = getattr(args, "config", None)
    return open_settings_case_db(load_settings(Path(config) if config else None), demo_dir,
                                 str(url) if url else None)
