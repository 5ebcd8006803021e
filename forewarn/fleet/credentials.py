"""How the fleet's devices log in: one ``device_id password`` pair per line of a credentials
file (what ``forewarn devices add`` prints when it generates a password; ``#`` starts a
comment), or one shared password.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as tmp:
...     path = Path(tmp) / "fleet.credentials"
...     _ = path.write_text("# device password\\nhp-0000 s3cret\\nhp-0001  other\\n")
...     load_credentials(path)
{'hp-0000': 's3cret', 'hp-0001': 'other'}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from forewarn.errors import ConfigError
from forewarn.text import plural

__all__ = ["device_passwords", "load_credentials"]


def load_credentials(path: Path) -> dict[str, str]:
    """``device_id password`` pairs from ``path``; :class:`ConfigError` names a bad line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read credentials file {path}: {exc.strerror}") from exc
    credentials: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ConfigError(f"{path}:{number}: expected 'device_id password', "
                              f"found {len(parts)} words")
        credentials[parts[0]] = parts[1]
    return credentials


def device_passwords(device_ids: Sequence[str], credentials: Mapping[str, str] | None,
                     password: str | None) -> dict[str, str | None]:
    """Each device's password: its own from ``credentials``, else the shared ``password``.

    With credentials and no shared password, a device missing from them is an error (it could
    not log in, and finding that out device by device at the broker is slow)."""
    credentials = credentials or {}
    missing = [d for d in device_ids if d not in credentials]
    if credentials and missing and password is None:
        shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
        raise ConfigError(f"no password for {plural(len(missing), 'device')} in the credentials "
                          f"file: {shown}")
    return {d: credentials.get(d, password) for d in device_ids}
