"""Every customer and team text is a message of the catalogues, complete in every language.

The messages are extracted from rules/ (Python and templates) the way ``pybabel extract`` does
with rules/locale/babel.cfg; each must be translated, not fuzzy, with the same placeholders, in
every language of :data:`rules.catalogue.LANGUAGES`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from rules.catalogue import LANGUAGES, po_file
from rules.evaluate import Alarm
from rules.messages import customer_message
from rules.model import Rule

ROOT = Path(__file__).resolve().parents[2]
KEYWORDS = {**DEFAULT_KEYWORDS, "_term": ((1, "c"), 2)}


def _extracted() -> set[tuple[str | None, str]]:
    with (ROOT / "rules/locale/babel.cfg").open(encoding="utf-8") as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    found = set()
    for _file, _line, message, _comments, context in extract_from_dir(
            str(ROOT), method_map, options_map, keywords=KEYWORDS):
        msgid = message[0] if isinstance(message, tuple) else message
        found.add((context, msgid))
    return found


def test_the_messages_are_extracted_from_code_and_templates() -> None:
    found = _extracted()
    assert (None, "Your support team") in found
    assert ("glossary", "discharge_temp") in found
    assert len(found) > 40


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_message_exists_in_every_language(language: str) -> None:
    with po_file(language).open("rb") as po:
        catalog = read_po(po, locale=language)
    translated = {}
    for message in catalog:
        if not message.id:
            continue
        msgid = message.id[0] if isinstance(message.id, tuple) else message.id
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        assert not message.fuzzy, f"{language}: {msgid!r} is fuzzy"
        assert all(strings), f"{language}: {msgid!r} has no translation"
        translated[(message.context, msgid)] = message
    missing = _extracted() - set(translated)
    assert not missing, f"{language} lacks {sorted(missing, key=str)}"
    problems = [(m.id, errors) for m, errors in catalog.check()]
    assert not problems, f"{language}: placeholders differ: {problems}"


def _alarm(fields: tuple[str, ...]) -> Alarm:
    return Alarm(Rule(name="r", score_at_least=0.8), "acme", "hp-1", "heat_pump", 0.0, 600.0,
                 fields[0], 0.93, 81.5, fields=fields)


@pytest.mark.parametrize(("fields", "phrase"), [
    pytest.param(("discharge_temp",), "its discharge temperature has been unusual", id="one"),
    pytest.param(("discharge_temp", "suction_pressure"),
                 "its discharge temperature and suction pressure have been unusual", id="two"),
])
def test_the_number_of_fields_picks_the_plural(fields: tuple[str, ...], phrase: str) -> None:
    _, body = customer_message(_alarm(fields), case_id=7)
    assert phrase in body


@pytest.mark.parametrize("language", LANGUAGES)
def test_customer_notices_have_no_hard_wraps(language: str) -> None:
    _, body = customer_message(_alarm(("discharge_temp",)), case_id=7, language=language,
                               customer_name="Kim")
    lines = [line for line in body.splitlines() if line]
    signature = lines[-1]
    # every line ends a sentence (or greets); only the signature stands alone
    assert all(line.endswith((".", ",", ":")) for line in lines[:-1]), body
    assert len(signature) < 20
