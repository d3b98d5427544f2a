"""The review as files: Markdown (charts as PNG files beside it), HTML (charts inline as SVG),
PDF (WeasyPrint, from the same HTML with the PNGs), and the figures as JSON.

WeasyPrint renders HTML and CSS to PDF in-process (Pango for text): no browser to start, and
nothing fetched from outside: the only resources a review has are `data:` images, and the URL
fetcher refuses anything else."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from markupsafe import Markup

from bot.render import Renderer
from bot.review.figures import Figures
from bot.timeutil import format_duration, format_local_utc

if TYPE_CHECKING:
    from bot.review.charts import Chart

TEMPLATE = "review_document"


def review_stem(ref: str, version: int) -> str:
    """What a version's files are called, before their suffixes: `ICC-2026-001-review-v2`."""
    return f"{ref}-review-v{version}"


@dataclass(frozen=True)
class ReviewFiles:
    """One version of the review, as the files posted (and put in the record bundle)."""

    ref: str
    version: int
    markdown: bytes
    html: bytes
    pdf: bytes
    figures: bytes  # JSON
    charts: list[Chart]

    @property
    def stem(self) -> str:
        return review_stem(self.ref, self.version)

    def files(self) -> list[tuple[str, bytes, str]]:
        """(name, bytes, mimetype) of each file, the Markdown first."""
        listed = [
            (f"{self.stem}.md", self.markdown, "text/markdown"),
            (f"{self.stem}.html", self.html, "text/html"),
            (f"{self.stem}.pdf", self.pdf, "application/pdf"),
            (f"{self.stem}-figures.json", self.figures, "application/json"),
        ]
        for chart in self.charts:
            listed.append((f"{self.stem}-{chart.name}.png", chart.png, "image/png"))
            listed.append((f"{self.stem}-{chart.name}.svg", chart.svg.encode(), "image/svg+xml"))
        return listed

    def manifest(self) -> bytes:
        return "".join(
            f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data, _ in self.files()
        ).encode()


def compose(
    renderer: Renderer, figures: Figures, version: int, zone: ZoneInfo, marker: str
) -> ReviewFiles:
    """Every file of the review (CPU work: run it off the event loop).

    WeasyPrint and matplotlib (through `bot.review.charts`) are imported here, when a review is
    made, not with the bot: together they are over a second of every start and ~80 MB of its
    resident memory (bench/, start-up and memory), for a document made once an activation."""
    from weasyprint import HTML
    from weasyprint.urls import URLFetcher

    from bot.review.charts import draw

    charts = draw(figures)
    stem = f"{figures.ref}-review-v{version}"

    def when(moment: datetime) -> str:
        return format_local_utc(moment, zone, with_date=True)

    def dur(seconds: float | None) -> str:
        return "—" if seconds is None else format_duration(timedelta(seconds=round(seconds)))

    end = figures.closed_at or figures.at
    common: dict[str, Any] = {
        "f": figures,
        "version": version,
        "when": when,
        "dur": dur,
        "duration": (end - figures.opened_at).total_seconds(),
        "marker": marker,
    }
    markdown = renderer.text(
        TEMPLATE,
        charts=[{"name": c.name, "title": c.title, "file": f"{stem}-{c.name}.png"} for c in charts],
        **common,
    )
    html = renderer.page(
        TEMPLATE,
        # Inline SVG is our own drawing; matplotlib escapes the text in it.
        charts=[{"name": c.name, "markup": Markup(c.svg)} for c in charts],
        **common,
    )
    printable = renderer.page(
        TEMPLATE,
        charts=[
            {
                "name": c.name,
                "markup": Markup('<img alt="{}" src="data:image/png;base64,{}">').format(
                    c.title, base64.b64encode(c.png).decode()
                ),
            }
            for c in charts
        ],
        **common,
    )
    # Its own `data:` images, nothing else: a review fetches nothing from anywhere.
    fetcher = URLFetcher(allowed_protocols={"data"}, fail_on_errors=True)
    pdf = HTML(string=printable, url_fetcher=fetcher).write_pdf()
    assert pdf is not None
    return ReviewFiles(
        ref=figures.ref,
        version=version,
        markdown=(markdown + "\n").encode(),
        html=html.encode(),
        pdf=pdf,
        figures=json.dumps(
            {"version": version} | figures.as_json(), indent=2, ensure_ascii=False
        ).encode(),
        charts=charts,
    )
