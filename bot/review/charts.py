"""The review's charts, drawn with matplotlib's Agg canvas (no display, no pyplot state): each
as PNG (Markdown, PDF) and SVG (HTML). Drawing is CPU work; callers run it off the event loop."""

from __future__ import annotations

import io
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # before anything draws: no display, whatever the environment says

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from bot.review.figures import Figures

# The same figures draw the same bytes: the SVG's ids and both files' metadata carry no date.
matplotlib.rcParams["svg.hashsalt"] = "icc-review"
matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: searchable, selectable
MEDIAN, SLOWEST, REPORTED, MISSING = "#1f5fa8", "#c0392b", "#2e8b57", "#bbbbbb"


@dataclass(frozen=True)
class Chart:
    name: str  # in file names: `<ref>-review-v<n>-<name>.png`
    title: str
    png: bytes
    svg: str


def _save(figure: Figure) -> tuple[bytes, str]:
    FigureCanvasAgg(figure)
    figure.tight_layout()
    png, svg = io.BytesIO(), io.StringIO()
    figure.savefig(png, format="png", dpi=110, metadata={"Software": None})
    figure.savefig(svg, format="svg", metadata={"Date": None, "Creator": None})
    text = svg.getvalue()
    return png.getvalue(), text[text.index("<svg") :]  # inline in HTML: no XML prologue


def latency_chart(figures: Figures) -> Chart | None:
    """Median and slowest acknowledgement per organisation, in seconds."""
    groups = [g for g in figures.by_organisation if g.acked]
    if not groups:
        return None
    figure = Figure(figsize=(7, 0.6 * len(groups) + 1.4))
    axes = figure.subplots()
    ys = range(len(groups))
    axes.barh(
        [y + 0.2 for y in ys],
        [g.slowest_s or 0 for g in groups],
        0.4,
        label="slowest",
        color=SLOWEST,
    )
    axes.barh(
        [y - 0.2 for y in ys], [g.median_s or 0 for g in groups], 0.4, label="median", color=MEDIAN
    )
    axes.set_yticks(list(ys), [g.group for g in groups])
    axes.invert_yaxis()
    axes.set_xlabel("seconds from delivery to acknowledgement")
    axes.set_title("Acknowledgement latency per organisation")
    axes.legend(loc="lower right")
    png, svg = _save(figure)
    return Chart("ack-latency", "Acknowledgement latency per organisation", png, svg)


def attendance_chart(figures: Figures) -> Chart | None:
    """Who reported in each round run, against who was expected."""
    runs = figures.rounds
    if not runs:
        return None
    figure = Figure(figsize=(7, 3.2))
    axes = figure.subplots()
    labels = [f"{r.round} #{r.number}" for r in runs]
    axes.bar(labels, [r.reported for r in runs], color=REPORTED, label="reported")
    axes.bar(
        labels,
        [r.expected - r.reported for r in runs],
        bottom=[r.reported for r in runs],
        color=MISSING,
        label="did not report",
    )
    axes.set_ylabel("participants")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_title("Round attendance")
    axes.legend(loc="upper right")
    png, svg = _save(figure)
    return Chart("attendance", "Round attendance", png, svg)


def feedback_chart(figures: Figures) -> Chart | None:
    """How many gave each score, 1 to 5."""
    if not figures.feedback.answered:
        return None
    figure = Figure(figsize=(5, 2.6))
    axes = figure.subplots()
    scores = figures.feedback.scores
    axes.bar([str(n) for n in scores], list(scores.values()), color=MEDIAN)
    axes.set_xlabel("score")
    axes.set_ylabel("answers")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_title("Participants' feedback")
    png, svg = _save(figure)
    return Chart("feedback", "Participants' feedback", png, svg)


def draw(figures: Figures) -> list[Chart]:
    """Every chart the figures have data for."""
    drawn = (latency_chart(figures), attendance_chart(figures), feedback_chart(figures))
    return [chart for chart in drawn if chart is not None]
