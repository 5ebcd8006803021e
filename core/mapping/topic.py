"""Topic filters with named wildcards: ``acme/+site/+device/state``.

A level ``+name`` matches one level and names it; a plain ``+`` matches one level unnamed; a
final ``#`` matches the rest. :attr:`TopicPattern.subscription` is the MQTT filter to subscribe
to (names dropped).

>>> pattern = TopicPattern("acme/+site/+device/state")
>>> pattern.subscription, pattern.names
('acme/+/+/state', ('site', 'device'))
>>> pattern.match("acme/s1/hp-9/state")
{'site': 's1', 'device': 'hp-9'}
>>> pattern.match("acme/s1/hp-9/other") is None, pattern.match("acme/s1/state") is None
(True, True)
"""

from __future__ import annotations

import re

__all__ = ["TopicPattern"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,31}")


class TopicPattern:
    """One topic filter with named ``+`` levels; raises ValueError when it is not one."""

    def __init__(self, text: str) -> None:
        levels = text.split("/")
        if not text:
            raise ValueError("topic: empty")
        self.text = text
        self._levels: list[str | None] = []  # a literal level, or None for a wildcard
        names: list[str] = []
        self._named: list[tuple[int, str]] = []
        self._rest = False
        for i, level in enumerate(levels):
            if level == "#":
                if i != len(levels) - 1:
                    raise ValueError(f"topic {text!r}: '#' must be the last level")
                self._rest = True
            elif level.startswith("+"):
                name = level[1:]
                if name:
                    if not _NAME.fullmatch(name):
                        raise ValueError(f"topic {text!r}: wildcard name {name!r} is not a name")
                    if name in names:
                        raise ValueError(f"topic {text!r}: wildcard {name!r} named twice")
                    names.append(name)
                    self._named.append((i, name))
                self._levels.append(None)
            elif "+" in level or "#" in level:
                raise ValueError(f"topic {text!r}: level {level!r} mixes a wildcard and text")
            else:
                self._levels.append(level)
        self.names = tuple(names)
        self.subscription = "/".join("+" if level.startswith("+") else level
                                     for level in levels)

    def match(self, topic: str) -> dict[str, str] | None:
        """The named levels of ``topic``, or None when it does not match."""
        levels = topic.split("/")
        fixed = len(self._levels)
        if len(levels) < fixed or (not self._rest and len(levels) != fixed):
            return None
        for want, got in zip(self._levels, levels, strict=False):
            if want is not None and want != got:
                return None
        return {name: levels[i] for i, name in self._named}

    def __repr__(self) -> str:
        return f"TopicPattern({self.text!r})"
