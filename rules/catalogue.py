"""The message catalogues: every text a customer or the team reads, per language, as gettext.

The catalogues are the ``.po`` files in ``rules/locale/<language>/LC_MESSAGES/forewarn.po``,
made from ``rules/locale/forewarn.pot`` (the messages of :mod:`rules.messages` and
``rules/templates/``). Adding a language is adding a ``.po`` file a translator can edit (and its
code to :data:`LANGUAGES`). They are compiled when first used, so a fresh clone needs no build
step and there is no ``.mo`` to go stale.

>>> translations("ko").pgettext("glossary", "heat_pump")
'히트펌프'
>>> translations("xx") is translations("en")  # an unknown language reads English
True
"""

from __future__ import annotations

import gettext
import io
from functools import cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

__all__ = ["DOMAIN", "LANGUAGES", "LOCALE_DIR", "po_file", "translations"]

#: the gettext domain: the catalogue files are named after it
DOMAIN = "forewarn"
#: languages with a complete catalogue; the first is the fallback
LANGUAGES: tuple[str, ...] = ("en", "ko")
LOCALE_DIR = Path(__file__).with_name("locale")


def po_file(language: str) -> Path:
    """Where the catalogue of ``language`` lives."""
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def translations(language: str) -> gettext.GNUTranslations:
    """The compiled catalogue of ``language`` (English for a language forewarn does not have)."""
    return _compiled(language if language in LANGUAGES else LANGUAGES[0])


@cache
def _compiled(language: str) -> gettext.GNUTranslations:
    with po_file(language).open("rb") as po:
        catalog = read_po(po, locale=language, domain=DOMAIN)
    mo = io.BytesIO()
    write_mo(mo, catalog)  # fuzzy entries are left out: a guess is not a translation
    mo.seek(0)
    return gettext.GNUTranslations(mo)
