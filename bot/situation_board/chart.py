"""The board's chart: acknowledgement latency per organisation, as SVG drawn from the numbers.

Hand-drawn rather than plotted: it is one bar per organisation (the median, with a mark at the
slowest), redrawn at every change of a busy activation for every open board, which a plotting
library (none is among the bot's dependencies) would make slower and heavier for no gain. Its
text is real text, so it stays sharp on a wall screen and on paper and is read out by screen
readers; its colours come from the page's stylesheet (classes, no inline style, which the
board's Content-Security-Policy forbids).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from statistics import median

from markupsafe import Markup, escape

from bot.timeutil import format_duration

WIDTH = 400  # the viewBox: the chart scales to its column's width
BARS = 210  # the longest bar (the slowest acknowledgement); its figures to its right
ROW = 46  # per organisation: its name, then its bar and figures
BAR = 16
NAME_CHARS = 34


@dataclass(frozen=True)
class OrganisationLatency:
    name: str
    latencies: list[float]  # seconds, of each acknowledgement
    paged: int  # people paged in it (each person once per page)

    @property
    def median(self) -> float | None:
        return median(self.latencies) if self.latencies else None

    @property
    def slowest(self) -> float | None:
        return max(self.latencies) if self.latencies else None


def latency_chart(organisations: list[OrganisationLatency]) -> Markup:
    """The chart as inline SVG; an empty Markup when nobody was paged."""
    if not organisations:
        return Markup("")
    scale = max((o.slowest or 0.0 for o in organisations), default=0.0) or 1.0
    rows: list[str] = []
    for index, org in enumerate(organisations):
        top = index * ROW
        answered = f"{len(org.latencies)}/{org.paged}"
        bars = f'<rect class="track" x="0" y="{top + 24}" width="{BARS}" height="{BAR}"/>'
        if org.median is None or org.slowest is None:
            figures = "no ack yet"
        else:
            typical = format_duration(_seconds(org.median))
            slowest_text = format_duration(_seconds(org.slowest))
            figures = typical if slowest_text == typical else f"{typical} · max {slowest_text}"
            width = max(2.0, BARS * org.median / scale)
            slowest = min(BARS - 3.0, BARS * org.slowest / scale)
            bars += (
                f'<rect class="bar" x="0" y="{top + 24}" width="{width:.1f}" height="{BAR}"/>'
                f'<rect class="slow" x="{slowest:.1f}" y="{top + 21}" width="3" '
                f'height="{BAR + 6}"/>'
            )
        name = org.name if len(org.name) <= NAME_CHARS else org.name[: NAME_CHARS - 1] + "…"
        rows.append(
            f"<g><title>{escape(org.name)}: {answered} acknowledged; "
            f"{escape(figures if org.median is None else 'median ' + figures)}</title>"
            f'<text class="name" x="0" y="{top + 17}">{escape(name)} '
            f'<tspan class="figures">{answered}</tspan></text>{bars}'
            f'<text class="figures" x="{BARS + 8}" y="{top + 37}">{escape(figures)}</text></g>'
        )
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {ROW * len(organisations) + 2}" role="img" '
        'aria-labelledby="chart-title" preserveAspectRatio="xMinYMin meet">'
        '<title id="chart-title">Acknowledgement latency per organisation: the median, and '
        f"a mark at the slowest</title>{''.join(rows)}</svg>"
    )


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=round(value))
