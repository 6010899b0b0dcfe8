"""The report's charts: matplotlib figures saved as SVG and made fit to stand inline in one HTML file.

Text stays text (svg.fonttype "none": the browser draws it, so the SVG is small and searchable);
the XML prologue, the metadata and the namespace URIs go (HTML needs none of them, and the page must
name no URL); each chart's ids get a prefix of their own, so two charts never share one. Each
function takes what one or more datasets hold and gives SVG markup, or None when there is nothing
to draw. Datasets are told apart by colour, in the order given.
"""

import io
import re
from typing import Any, Mapping, Optional, Sequence

from synthgen.report.page import references
from synthgen.stats import word_bounds

WIDTH = 7.5  # inches; the page scales every chart to its column
COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")
STYLE: dict[str, Any] = {"svg.fonttype": "none", "font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
         "axes.grid": True, "grid.alpha": 0.3, "legend.frameon": False}

Counts = Mapping[str, Mapping[Any, float]]  # dataset label -> category -> value


def colour(n: int) -> str:
    return COLOURS[n % len(COLOURS)]


def figure(height: float, columns: int = 1) -> Any:
    """A figure (no pyplot: nothing global, nothing to close) and its axes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH, height), layout="constrained")
    return fig, fig.subplots(1, columns, squeeze=False)[0]


_counter = 0


def svg(fig: Any) -> str:
    """The figure as SVG markup to stand inline: no prologue, metadata or namespaces, ids its own."""
    global _counter
    _counter += 1
    prefix = f"c{_counter}-"
    buffer = io.StringIO()
    with _context({"svg.hashsalt": prefix}):
        fig.savefig(buffer, format="svg")
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
    text = re.sub(r'\s+xmlns(?::\w+)?="[^"]*"', "", text)
    text = text.replace(' id="', f' id="{prefix}').replace('url(#', f'url(#{prefix}').replace('href="#', f'href="#{prefix}')
    # A label may hold a URL (a source, a path): as text it loads nothing, and written as the page
    # writes every text of a dataset, it names none.
    text = re.sub(r">([^<]+)<", lambda m: ">" + references(m[1]) + "<", text)
    return re.sub(r"(?<=<svg)", ' class="chart" role="img"', text, count=1)


def _context(extra: Optional[dict[str, Any]] = None) -> Any:
    import matplotlib

    settings: Any = {**STYLE, **(extra or {})}
    return matplotlib.rc_context(settings)


def _styled(draw: Any) -> Any:
    """Draw inside the report's style (rc settings apply when artists are made, not only at save)."""
    with _context():
        return draw()


def bars(counts: Counts, horizontal: bool = False, label: str = "examples", order: Optional[Sequence[Any]] = None,
         share: bool = False) -> Optional[str]:
    """Grouped bars: a group per category, a bar per dataset. order: the categories, in order
    (default: by total, largest first)."""
    totals: dict[Any, float] = {}
    for values in counts.values():
        for category, value in values.items():
            totals[category] = totals.get(category, 0) + value
    if not totals:
        return None
    categories = list(order) if order is not None else sorted(totals, key=lambda c: (-totals[c], str(c)))

    drawn = [(d, name, values) for d, (name, values) in enumerate(counts.items()) if values]

    def draw() -> str:
        n = len(drawn)
        width = 0.8 / n
        size = (0.22 * len(categories) * max(1, n * 0.6) + 0.8) if horizontal else 3.2
        fig, (ax,) = figure(max(1.6, size))
        for slot, (d, name, values) in enumerate(drawn):
            place = [i + (slot - (n - 1) / 2) * width for i in range(len(categories))]
            heights = [values.get(c, 0) for c in categories]
            if horizontal:
                ax.barh(place, heights, height=width, color=colour(d), label=name)
            else:
                ax.bar(place, heights, width=width, color=colour(d), label=name)
        ticks = range(len(categories))
        names = [str(c) for c in categories]
        if horizontal:
            ax.set_yticks(ticks, names)
            ax.set_ylim(len(categories) - 0.5, -0.5)  # the first category on top
        else:
            slanted = max(map(len, names)) > 8
            ax.set_xticks(ticks, names, rotation=30 if slanted else 0, ha="right" if slanted else "center")
        (ax.set_xlabel if horizontal else ax.set_ylabel)(label)
        ax.grid(axis="y" if horizontal else "x", visible=False)
        if share:
            (ax.set_xlim if horizontal else ax.set_ylim)(0, 1)
        else:
            _counting(ax.xaxis if horizontal else ax.yaxis)
        if n > 1:
            ax.legend(fontsize=8)
        return svg(fig)

    return _styled(draw)


def _counting(axis: Any) -> None:
    """An axis that counts: ticks at whole numbers only, thousands separated."""
    from matplotlib.ticker import MaxNLocator, StrMethodFormatter

    axis.set_major_locator(MaxNLocator(integer=True))
    axis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))


def _expand(histogram: Mapping[int, int]) -> tuple[list[int], list[int]]:
    values = sorted(histogram)
    return values, [histogram[v] for v in values]


def _quantile(histogram: Mapping[int, int], q: float) -> float:
    n = sum(histogram.values())
    rank, seen = max(1, round(q * n)), 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return value
    return max(histogram)


def lengths(by_field: Mapping[str, Mapping[str, Mapping[int, int]]]) -> Optional[str]:
    """One kind's length histograms in words: a panel per field (query, positive, negative), a line
    per dataset. by_field: field -> dataset label -> words -> examples."""
    fields = [name for name, per_dataset in by_field.items() if any(per_dataset.values())]
    if not fields:
        return None

    def draw() -> str:
        fig, axes = figure(2.4, len(fields))
        for ax, name in zip(axes, fields):
            per_dataset = by_field[name]
            top = max(_quantile(h, 0.99) for h in per_dataset.values() if h)
            step = max(1, int(top // 40) + 1)
            edges = list(range(0, int(top) + 2 * step, step))
            for d, (label, histogram) in enumerate(per_dataset.items()):
                if not histogram:
                    continue
                values, weights = _expand({v: c for v, c in histogram.items() if v <= edges[-1]})
                ax.hist(values, bins=edges, weights=weights, histtype="step", color=colour(d), label=label, linewidth=1.4)
            ax.set_title(name, fontsize=9)
            ax.set_xlabel("words")
            ax.set_ylabel("examples" if ax is axes[0] else "")
        if len(next(iter(by_field.values()))) > 1:
            axes[-1].legend(fontsize=7)
        return svg(fig)

    return _styled(draw)


def asked(by_value: Mapping[str, Mapping[str, Mapping[int, int]]]) -> Optional[str]:
    """What was asked against what came back, for one length check: a box per phrase asked and
    dataset (whiskers at the 5th and 95th percentiles), over a band for the range the phrase asks.
    by_value: phrase -> dataset label -> words -> examples."""
    phrases = sorted(by_value, key=lambda p: ((word_bounds(p) or (0, 0))[0], p))
    if not phrases:
        return None

    def draw() -> str:
        fig, (ax,) = figure(2.8)
        labels = list(dict.fromkeys(label for p in phrases for label in by_value[p]))
        n = len(labels)
        width = 0.7 / n
        written = max(_quantile(h, 0.95) for p in phrases for h in by_value[p].values() if h)
        asked_low = max((word_bounds(p) or (0, 0))[0] for p in phrases)
        top = max(written, asked_low) * 1.15 + 1  # where an open range's band ends
        for i, phrase in enumerate(phrases):
            bounds = word_bounds(phrase)
            if bounds is not None:
                low, high = bounds
                ax.add_patch(_band(i - 0.45, low, 0.9, min(high, top) - low))
            for d, label in enumerate(labels):
                histogram = by_value[phrase].get(label)
                if not histogram:
                    continue
                stats = {"med": _quantile(histogram, 0.5), "q1": _quantile(histogram, 0.25),
                         "q3": _quantile(histogram, 0.75), "whislo": _quantile(histogram, 0.05),
                         "whishi": _quantile(histogram, 0.95), "fliers": []}
                ax.bxp([stats], positions=[i + (d - (n - 1) / 2) * width], widths=width * 0.9, patch_artist=True,
                       boxprops={"facecolor": colour(d), "alpha": 0.85}, medianprops={"color": "black"})
        ax.set_xticks(range(len(phrases)), phrases, rotation=15, ha="right")
        ax.set_xlim(-0.6, len(phrases) - 0.4)
        ax.set_ylim(0, top)
        ax.set_ylabel("words")
        ax.grid(axis="x", visible=False)
        if n > 1:
            ax.legend(handles=[_patch(colour(d), label) for d, label in enumerate(labels)], fontsize=7)
        return svg(fig)

    return _styled(draw)


def _band(x: float, y: float, width: float, height: float) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), width, height, facecolor="#2ca02c", alpha=0.12, edgecolor="none")


def _patch(face: str, label: str) -> Any:
    from matplotlib.patches import Patch

    return Patch(facecolor=face, label=label)


def histogram(counts: Counts, width: float, xlabel: str, ylabel: str = "examples", log: bool = False,
              zero_line: bool = False) -> Optional[str]:
    """Bars over numeric bins `width` wide (keyed by their lower edges), a set per dataset, overlaid."""
    drawn = sum(1 for values in counts.values() if values)
    if not drawn:
        return None

    def draw() -> str:
        fig, (ax,) = figure(2.6)
        for d, (label, values) in enumerate(counts.items()):
            edges = sorted(values, key=float)
            if not edges:
                continue
            ax.bar([float(e) for e in edges], [values[e] for e in edges], width=width, align="edge",
                   color=colour(d), alpha=0.6 if drawn > 1 else 0.9, label=label)
        if zero_line:
            ax.axvline(0, color="#c44e52", linewidth=1)
        if log:
            ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if not log:
            _counting(ax.yaxis)
        if drawn > 1:
            ax.legend(fontsize=7)
        return svg(fig)

    return _styled(draw)


def lines(series: Mapping[str, Sequence[tuple[float, float]]], xlabel: str, ylabel: str, log_x: bool = False,
          share: bool = False) -> Optional[str]:
    """A line with markers per series: label -> [(x, y), ...]."""
    if not any(series.values()):
        return None

    def draw() -> str:
        fig, (ax,) = figure(2.6)
        ticks: set[float] = set()
        for d, (label, points) in enumerate(series.items()):
            if points:
                xs, ys = zip(*points)
                ticks.update(xs)
                ax.plot(xs, ys, marker="o", color=colour(d), label=label)
        if log_x:
            ax.set_xscale("log", base=2)
            ax.minorticks_off()
            ax.set_xticks(sorted(ticks), [f"{t:g}" for t in sorted(ticks)])
        if share:
            ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)
        return svg(fig)

    return _styled(draw)
