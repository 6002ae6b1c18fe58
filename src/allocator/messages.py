"""Sentences as data: the English words (a message id of the catalogue) and the values put in
them, so a sentence written into a plan folder (``difficulties.json``) can be read later in
another language.

:func:`say` makes such a sentence: ``{"sentence": the English text, "message": {"id": ...,
"args": ...}}``. An argument is a value, another message (:func:`words`) or a list of them
(:func:`listed`). :func:`render` writes a message with a ``translate`` function (the report's
:func:`allocator.report.i18n.tr`; without one, English). This module sits below every stage, so
any stage may write sentences; translating them is the reader's business (the report and the
command line), which keeps a sentence stored in English readable in every language.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping


def _same(text: str) -> str:
    return text


def _plain(value):
    """A JSON value: numpy scalars as Python ones (a number stays a number for its format spec)."""
    return value.item() if hasattr(value, "item") and not isinstance(value, list | dict | str) else value


def words(text: str, **args) -> dict:
    """A message: ``text`` (English, with ``str.format`` fields) and the values of its fields."""
    return {"id": text, "args": {key: _plain(value) for key, value in args.items()}}


def listed(items: list, sep: str = "; ") -> dict:
    """Messages or values written one after another, ``sep`` (itself translated) between them."""
    return {"join": sep, "items": [_plain(item) for item in items]}


def render(message, translate: Callable[[str], str] = _same) -> str:
    """``message`` (from :func:`words` or :func:`listed`, or a plain value) as text, its words put
    through ``translate``."""
    if isinstance(message, Mapping) and "join" in message:
        return translate(message["join"]).join(render(item, translate) for item in message["items"])
    if isinstance(message, Mapping) and "id" in message:
        args = {key: render(value, translate) if isinstance(value, Mapping) else value
                for key, value in message.get("args", {}).items()}
        return translate(message["id"]).format(**args)
    return "" if message is None else str(message)


def say(text: str, **args) -> dict:
    """A sentence to store: its English text and its message (``{"sentence", "message"}``)."""
    message = words(text, **args)
    return {"sentence": render(message), "message": message}


def titled(message: dict) -> dict:
    """A self-describing summary's title (``monitor.json``, ``replan.json``): its English text and message."""
    return {"title": render(message), "title_message": message}


def sentence(item: Mapping, translate: Callable[[str], str] = _same) -> str:
    """The sentence of a stored finding (a dict with ``sentence`` and, when written by
    :func:`say`, ``message``) in the language of ``translate``; one written before messages, in English."""
    message = item.get("message")
    return render(message, translate) if message else str(item.get("sentence", ""))


__all__ = ["listed", "render", "say", "sentence", "titled", "words"]
