"""The one pattern for names (tenant, device, boot, product, field) everywhere in forewarn.

Names are safe as MQTT topic levels, SQL values, InfluxDB tags and file names: a letter or
digit, then up to 63 letters, digits, ``_``, ``.`` or ``-``.

>>> [bool(NAME_RE.fullmatch(name)) for name in ("hp-0007", "hp 7", "-x", "a" * 65)]
[True, False, False, False]
"""

from __future__ import annotations

import re

__all__ = ["NAME_PATTERN", "NAME_RE"]

#: for pydantic's ``pattern=`` (anchored)
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
#: the same names for Python's ``re``, whose ``$`` also matches before a final newline: use
#: ``NAME_RE.fullmatch(name)``
NAME_RE = re.compile(NAME_PATTERN[1:-1])
