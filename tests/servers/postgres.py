"""A throwaway PostgreSQL 15 server (Debian ``postgresql``) for tests and benchmarks.

PostgreSQL refuses to run as root, so the data directory lives in a temp dir owned by the
``postgres`` user and the server runs as that user (``runuser``). It listens on a free
127.0.0.1 port with trust authentication, and is stopped and deleted on exit::

    with Postgres() as pg:
        engine = create_engine(pg.url)      # postgresql+psycopg://postgres@127.0.0.1:<port>/postgres
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from forewarn.ports import free_port

__all__ = ["Postgres", "postgres_bindir"]

_CANDIDATES = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin",
               "/usr/lib/postgresql/17/bin")


def postgres_bindir() -> Path | None:
    """Directory of ``initdb``/``pg_ctl``, or None when PostgreSQL (or its user) is missing."""
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return None
    for candidate in _CANDIDATES:
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    return None


class Postgres:
    """One PostgreSQL server in its own temp dir."""

    host = "127.0.0.1"

    def __init__(self, port: int | None = None) -> None:
        bindir = postgres_bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL not installed (apt-get install postgresql)")
        self.bindir = bindir
        self.port = port or free_port()
        self.workdir: Path | None = None

    @property
    def url(self) -> str:
        """SQLAlchemy URL (psycopg 3 driver) of the ``postgres`` database."""
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/postgres"

    def __enter__(self) -> Postgres:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _as_postgres(self, *args: str, timeout: float = 60.0) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout)

    def start(self, timeout_s: float = 30.0) -> None:
        """initdb, start, and wait until it accepts connections."""
        entry = pwd.getpwnam("postgres")
        # not under pytest's root-only temp dirs: the postgres user must reach it
        self.workdir = Path(tempfile.mkdtemp(prefix="forewarn-pg-"))
        os.chown(self.workdir, entry.pw_uid, entry.pw_gid)
        data = self.workdir / "data"
        self._as_postgres(str(self.bindir / "initdb"), "-D", str(data), "-A", "trust",
                          "-U", "postgres", "--no-sync", "-E", "UTF8")
        options = (f"-p {self.port} -c listen_addresses={self.host} "
                   f"-c unix_socket_directories={self.workdir} -c fsync=off "
                   "-c max_connections=200")
        self._as_postgres(str(self.bindir / "pg_ctl"), "-D", str(data), "-o", options,
                          "-l", str(self.workdir / "postgres.log"), "-w", "-t",
                          str(int(timeout_s)), "start", timeout=timeout_s + 10)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"PostgreSQL did not listen on {self.port}; see {self.workdir}")

    def close(self) -> None:
        """Stop the server (immediately) and delete its files."""
        if self.workdir is None:
            return
        data = self.workdir / "data"
        if (data / "postmaster.pid").exists():
            self._as_postgres(str(self.bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                              "-w", "stop")
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir = None
