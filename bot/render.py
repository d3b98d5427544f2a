"""Every word the bot says comes from a template pair: `name.txt.j2` (body) + `name.html.j2`.

The HTML side autoescapes, so what a user typed is shown, never rendered; StrictUndefined makes a
missing variable an error at render time, not a blank in a message sent at 3 a.m. Operators
override any template by dropping a file of the same name in `ICC_CONFIG_DIR/templates`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    TemplateNotFound,
)
from markdown_it import MarkdownIt
from markupsafe import Markup, escape

BASE_LANGUAGE = "en"
# Parentheses and `!` mean something only after `]` or before `[`, both escaped: a name such as
# "Pieter de Vries (NCC)" stays as written.
MARKDOWN_SPECIAL = set("\\`*_{}[]#+|<>")
MARKDOWN_ESCAPED = re.compile(r"\\([\\`*_{}\[\]#+|<>])")


# What people type, as Element and other clients write it: CommonMark with its line breaks,
# typed HTML shown as text, and no links or images (a page is no place for a link to follow).
_LIGHT = MarkdownIt("commonmark", {"html": False, "breaks": True}).disable(
    ["image", "link", "autolink"]
)


# The tags (and attributes) light_markdown can produce: all within what the Matrix spec allows
# in `formatted_body`.
LIGHT_TAGS = frozenset(
    ("p", "br", "strong", "em", "code", "pre", "ul", "ol", "li", "blockquote", "hr")
) | {f"h{n}" for n in range(1, 7)}
LIGHT_ATTRIBUTES = frozenset(("start", "class"))  # <ol start="3">, <code class="language-x">


def verbatim_lines(text: str) -> Markup:
    """Words quoted verbatim (a partner's answer in the advice note): escaped, nothing read as
    formatting, only the line breaks kept."""
    return Markup("<br>\n").join(escape(line) for line in str(text).splitlines())


def light_markdown(text: str) -> Markup:
    """What a person typed, for an HTML message: its line breaks and light formatting (bold,
    italics, lists, code) kept, anything else shown as typed. A multi-line page reaches its
    reader as the lines it was written in, not one paragraph."""
    return Markup(_LIGHT.render(str(text)).strip())


def markdown_unescape(text: str) -> str:
    """A Markdown document read as plain text (a message's body): the escapes taken out."""
    return MARKDOWN_ESCAPED.sub(r"\1", text)


def markdown_escape(text: str) -> str:
    """User text inside a Markdown document: shown as typed, never read as Markdown or HTML."""
    return "".join("\\" + ch if ch in MARKDOWN_SPECIAL else ch for ch in str(text))


def markdown_line(text: str) -> str:
    """User text on one line of a Markdown document (a list item, a table cell): its line
    breaks shown as ⏎, Markdown and HTML characters escaped."""
    return markdown_escape(" ⏎ ".join(str(text).splitlines()))


@dataclass(frozen=True)
class Message:
    """What the Matrix layer sends: a plain body and its HTML form."""

    body: str
    html: str
    framed: bool = False  # already carries an activation's TLP line (and exercise markers)


class Renderer:
    def __init__(self, override_dir: Path | None = None, **globals_: Any) -> None:
        loaders: list[BaseLoader] = [PackageLoader("bot", "templates")]
        if override_dir is not None and override_dir.is_dir():
            loaders.insert(0, FileSystemLoader(str(override_dir)))
        self._text, self._html = (
            Environment(
                loader=ChoiceLoader(loaders),
                autoescape=autoescape,
                undefined=StrictUndefined,
                trim_blocks=True,
                lstrip_blocks=True,
                keep_trailing_newline=False,
            )
            for autoescape in (False, True)
        )
        for env in (self._text, self._html):
            env.globals.update(globals_)
            env.filters["md"] = markdown_escape
            env.filters["md_line"] = markdown_line
        self._html.filters["typed"] = light_markdown
        self._html.filters["verbatim"] = verbatim_lines
        self._known: dict[str, bool] = {}

    def render(self, template: str, /, *, lang: str | None = None, **context: Any) -> Message:
        """Render `template`; with `lang`, its translation `<template>.<lang>.txt.j2` if any.

        English is the base template (`<template>.txt.j2`); a language without its own template
        falls back to it, so a missing translation never leaves a message unsent.
        """
        stem = self._stem(template, lang)
        body = self._text.get_template(f"{stem}.txt.j2").render(**context).strip()
        html = self._html.get_template(f"{stem}.html.j2").render(**context).strip()
        return Message(body=body, html=html)

    def text(self, template: str, /, *, lang: str | None = None, **context: Any) -> str:
        """Plain text only (`<template>[.<lang>].txt.j2`): an e-mail's subject, an SMS."""
        stem = self._stem(template, lang)
        return self._text.get_template(f"{stem}.txt.j2").render(**context).strip()

    def page(self, template: str, /, *, lang: str | None = None, **context: Any) -> str:
        """A whole HTML document (`<template>[.<lang>].html.j2`, escaped): a web page."""
        stem = self._stem(template, lang, suffix="html")
        return self._html.get_template(f"{stem}.html.j2").render(**context)

    def _stem(self, template: str, lang: str | None, suffix: str = "txt") -> str:
        """The translation's name when there is one for `lang`, else the base template's."""
        translated = f"{template}.{lang}"
        if lang and lang != BASE_LANGUAGE and self._has(translated, suffix):
            return translated
        return template

    def language_for(self, name: str, languages: Sequence[str]) -> str:
        """The first of a contact's languages that `name` has a template in; else English."""
        for lang in languages:
            if lang == BASE_LANGUAGE or self._has(f"{name}.{lang}"):
                return lang
        return BASE_LANGUAGE

    def _has(self, stem: str, suffix: str = "txt") -> bool:
        name = f"{stem}.{suffix}.j2"
        if name not in self._known:
            env = self._text if suffix == "txt" else self._html
            try:
                env.get_template(name)
                self._known[name] = True
            except TemplateNotFound:
                self._known[name] = False
        return self._known[name]
