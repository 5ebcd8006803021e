"""Rewriting a broker's files (password file, ACL) safely: under an exclusive lock, through a
temporary file that is fsynced and renamed over the old one, then an fsync of the directory.
Two provisioning runs at once lose no line, and a crash or power cut leaves the old file or the
new one, never half of one.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as tmp:
...     path = Path(tmp) / "passwd"
...     with locked(path):
...         replace_file(path, "a:1\\n")
...     oct(path.stat().st_mode & 0o777), path.read_text()
('0o600', 'a:1\\n')
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["locked", "replace_file"]


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock for rewriting ``path`` (a sidecar ``.lock`` file: the
    file itself is replaced, so a lock on it would be on the old file)."""
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def replace_file(path: Path, text: str, new_mode: int = 0o600) -> None:
    """Write ``text`` as ``path`` atomically and durably, keeping its owner and mode
    (Mosquitto must still be able to read it after a reload); a new file gets ``new_mode``."""
    try:
        old = path.stat()
    except FileNotFoundError:
        old = None
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            if old is not None:
                os.fchmod(out.fileno(), old.st_mode & 0o7777)
                with contextlib.suppress(PermissionError):
                    os.fchown(out.fileno(), old.st_uid, old.st_gid)
            else:
                os.fchmod(out.fileno(), new_mode)
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a power cut
    finally:
        os.close(directory)
