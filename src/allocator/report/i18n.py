"""The report's languages: English (the words as written in the code, the message ids) and
Chinese (``locale/zh/LC_MESSAGES/allocator.po``, a gettext catalogue read with Babel and
compiled in memory once per language; no compiled ``.mo`` file is kept).

:func:`tr` translates a visible string into the language in use; :func:`language` sets that
language for a block (the report's text, and its charts' labels, which stay English when no
CJK font is found). Code outside such a block gets English, as before.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from pathlib import Path

LANGUAGES = ("en", "zh")
DEFAULT = "en"
ENV = "ALLOCATOR_LANG"  # the command line's default language
DOMAIN = "allocator"
LOCALE = Path(__file__).with_name("locale")

_text: ContextVar[str] = ContextVar("allocator_report_lang", default=DEFAULT)
_charts: ContextVar[str] = ContextVar("allocator_chart_lang", default=DEFAULT)


def check_language(lang: str | None) -> str:
    """``lang`` as a known language code, or :class:`ValueError` saying which there are."""
    code = (lang or DEFAULT).strip().lower()
    if code not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}: the report is in {' or '.join(LANGUAGES)}")
    return code


@cache
def translations(lang: str):
    """The compiled catalogue of ``lang`` (Babel ``Translations``; English: none, the ids are the words)."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po
    from babel.support import NullTranslations, Translations

    if lang == DEFAULT:
        return NullTranslations()
    with (LOCALE / lang / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as po:
        catalog = read_po(po, locale=lang, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


def current() -> str:
    """The language of the text being written."""
    return _text.get()


def tr(text: str) -> str:
    """``text`` (its English words, the message id) in the language in use."""
    lang = _text.get()
    return text if lang == DEFAULT or not text else translations(lang).gettext(text)


def chart_tr(text: str) -> str:
    """``text`` in the language of the charts being drawn (English when no font can show the other)."""
    lang = _charts.get()
    return text if lang == DEFAULT or not text else translations(lang).gettext(text)


@contextmanager
def language(lang: str, charts: str | None = None) -> Iterator[None]:
    """Write in ``lang`` (charts in ``charts``, default the same) for the block."""
    lang = check_language(lang)
    tokens = _text.set(lang), _charts.set(check_language(charts or lang))
    try:
        yield
    finally:
        _charts.reset(tokens[1])
        _text.reset(tokens[0])
