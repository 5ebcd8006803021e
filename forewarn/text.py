"""Words for people: counts with the right plural, and help text without reST markup.

Every command prints counts with :func:`plural` and takes its ``--help`` text from a docstring
through :func:`plain`, so ``1 rules`` and raw ````double backticks```` cannot come back one
command at a time.

>>> plural(1, "alarm episode"), plural(3, "alarm episode"), plural(0, "fault", "faults")
('1 alarm episode', '3 alarm episodes', '0 faults')
>>> plural(1, "query", "queries"), plural(2, "query", "queries")
('1 query', '2 queries')
>>> paragraph("``forewarn rules check``: validate rules\\n  files and say what they do.\\n\\nMore.")
'forewarn rules check: validate rules files and say what they do.'
>>> plain("Run ``forewarn core``: see :mod:`core.service` and :func:`rules.load_rules`.")
'Run forewarn core: see core.service and rules.load_rules.'
"""

from __future__ import annotations

import re

__all__ = ["paragraph", "plain", "plural"]

_ROLE = re.compile(r":(?:[a-z]+:)?[a-z]+:`~?([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``")
_LINK = re.compile(r"`([^`<]+?)\s*<[^>]+>`_")


def plural(count: int, word: str, many: str | None = None) -> str:
    """``count`` and ``word``, with ``many`` (default: ``word`` + "s") unless it is one."""
    return f"{count} {word if count == 1 else (many or word + 's')}"


def plain(text: str) -> str:
    """``text`` with reST literals, roles and links turned into plain words (for ``--help``)."""
    text = _ROLE.sub(lambda m: m.group(1).split(".")[-1] if m.group(0).find("~") > 0
                     else m.group(1), text)
    text = _LINK.sub(r"\1", text)
    text = _LITERAL.sub(r"\1", text)
    return text.replace("::\n", ":\n")


def paragraph(doc: str | None) -> str | None:
    """The first paragraph of a docstring on one line, in plain words: a command's description
    (its first line alone may stop mid-sentence)."""
    if not doc:
        return None
    first = doc.strip().split("\n\n", 1)[0]
    return plain(" ".join(line.strip() for line in first.splitlines()))
