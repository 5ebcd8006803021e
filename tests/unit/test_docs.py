"""The README and ``docs/`` as a newcomer follows them: every relative link and every repository
path they name exists, ``docs/README.md`` lists every page, the README every command."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from forewarn.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", ROOT / "SECURITY.md", *sorted((ROOT / "docs").glob("*.md"))]
_LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_TICKED = re.compile(r"`([^`\s]+)`")
#: top-level folders of the repository: a ticked name under one of them is a path to check
_FOLDERS = ("benchmarks", "config", "core", "deploy", "docs", "edge", "firmware_sim", "forewarn",
            "rules", "tests")
#: ticked names under those folders that are MQTT topics or placeholders, not paths
_NOT_PATHS = re.compile(r"[*{}<>…$#+]|^forewarn/v1/|/NAME\.|^config/desired$")


def _prose(page: Path) -> list[tuple[int, str]]:
    """The page's lines outside fenced code blocks, numbered."""
    lines, fenced = [], False
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append((number, line))
    return lines


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens.

    >>> _anchor("Detection core (`core/detect/`)")
    'detection-core-coredetect'
    """
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_anchor(match.group(1)) for _, line in _prose(page)
            if (match := re.match(r"#{1,6}\s+(.*)", line))}


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_relative_links_point_to_a_file_and_heading_that_exist(page: Path) -> None:
    broken = []
    for number, line in _prose(page):
        for target in _LINK.findall(line):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):
                continue  # https:, mailto:: not this test's business
            path, _, fragment = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{page.name}:{number}: {target}: no such file")
            elif fragment and dest.suffix == ".md" and fragment not in _anchors(dest):
                broken.append(f"{page.name}:{number}: {target}: no such heading")
    assert not broken, broken


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_repository_paths_the_page_names_exist(page: Path) -> None:
    missing = []
    for number, line in _prose(page):
        for name in _TICKED.findall(line):
            name = name.rstrip(".,;:")
            if not name.startswith(tuple(f"{folder}/" for folder in _FOLDERS)) or \
                    _NOT_PATHS.search(name):
                continue
            if not (ROOT / name.split("::")[0]).exists():
                missing.append(f"{page.name}:{number}: {name}")
    assert not missing, missing


def test_the_docs_index_lists_every_page() -> None:
    index = (ROOT / "docs" / "README.md").read_text(encoding="utf-8")
    listed = set(_LINK.findall(index))
    pages = {page.name for page in (ROOT / "docs").glob("*.md")} - {"README.md"}
    assert pages - listed == set(), f"docs/README.md does not list {sorted(pages - listed)}"


def test_the_readme_names_every_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = next(action for action in build_parser()._actions
                    if isinstance(action, argparse._SubParsersAction)).choices
    unnamed = [name for name in commands if f"`forewarn {name}" not in readme]
    assert not unnamed, f"README.md's command table lacks {unnamed}"
