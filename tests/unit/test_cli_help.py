"""``forewarn --help`` and every command's help as a newcomer reads them (issue 24): every
option explained, no reST markup, descriptions not cut mid-sentence."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator

import pytest

from forewarn.cli import build_parser


def _parsers(parser: argparse.ArgumentParser, path: str = "forewarn",
             ) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{path} {name}")


def _texts(parser: argparse.ArgumentParser) -> Iterator[str]:
    yield from (t for t in (parser.description, parser.epilog) if t)
    for action in parser._actions:
        if action.help and action.help != argparse.SUPPRESS:
            yield action.help
        if isinstance(action, argparse._SubParsersAction):
            yield from (c.help for c in action._choices_actions if c.help)


def test_every_option_and_argument_of_every_command_has_help() -> None:
    missing = [f"{path}: {'/'.join(action.option_strings) or action.dest}"
               for path, parser in _parsers(build_parser())
               for action in parser._actions
               if not isinstance(action, argparse._HelpAction | argparse._SubParsersAction)
               and not action.help]
    assert not missing, missing


def test_no_help_text_shows_rest_markup() -> None:
    marked = [f"{path}: {text[:60]}" for path, parser in _parsers(build_parser())
              for text in _texts(parser)
              if "``" in text or re.search(r":(mod|class|func|meth):`", text)]
    assert not marked, marked


def _commands() -> list[str]:
    return [path.removeprefix("forewarn ") for path, _ in _parsers(build_parser())
            if path.count(" ") == 1]


@pytest.mark.parametrize("command", _commands())
def test_descriptions_end_with_their_sentence(command: str) -> None:
    # a description taken from a docstring's first line stopped mid-sentence ("ingest" did)
    parser = dict(_parsers(build_parser()))[f"forewarn {command}"]
    assert parser.description is not None
    assert parser.description.rstrip().endswith((".", "?")), parser.description


def test_rules_help_is_not_cut_mid_sentence() -> None:
    parser = dict(_parsers(build_parser()))["forewarn rules"]
    text = " ".join(parser.format_help().split())
    assert "seen by every process of the deployment." in text
