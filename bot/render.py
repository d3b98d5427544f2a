"""Every word the bot says comes from a template pair: `name.txt.j2` (body) + `name.html.j2`.

The HTML side autoescapes, so what a user typed is shown, never rendered; StrictUndefined makes a
missing variable an error at render time, not a blank in a message sent at 3 a.m. Operators
override any template by dropping a file of the same name in `ICC_CONFIG_DIR/templates`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader, StrictUndefined


@dataclass(frozen=True)
class Message:
    """What the Matrix layer sends: a plain body and its HTML form."""

    body: str
    html: str


class Renderer:
    def __init__(self, override_dir: Path | None = None, **globals_: Any) -> None:
        loaders = [PackageLoader("bot", "templates")]
        if override_dir is not None and override_dir.is_dir():
            loaders.insert(0, FileSystemLoader(str(override_dir)))
        common = {
            "undefined": StrictUndefined,
            "trim_blocks": True,
            "lstrip_blocks": True,
            "keep_trailing_newline": False,
        }
        self._text = Environment(loader=ChoiceLoader(loaders), autoescape=False, **common)
        self._html = Environment(loader=ChoiceLoader(loaders), autoescape=True, **common)
        for env in (self._text, self._html):
            env.globals.update(globals_)

    def render(self, name: str, **context: Any) -> Message:
        body = self._text.get_template(f"{name}.txt.j2").render(**context).strip()
        html = self._html.get_template(f"{name}.html.j2").render(**context).strip()
        return Message(body=body, html=html)
