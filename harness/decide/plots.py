"""Plots for the HTML views, as inline SVG strings that are byte-identical for the same input.

Each function takes a pandas frame from :func:`harness.decide.views.records_frame` (one goldset and split,
rows in rung order) and returns ``<svg ...>...</svg>``. matplotlib writes random element ids and the
current date into an SVG unless told otherwise: ``svg.hashsalt`` fixes the ids and
``metadata={"Date": None}`` drops the date, so regenerating a page from the same records changes
nothing. Text stays text (``svg.fonttype = none``), so the page needs no embedded fonts. Names are drawn as
given (``parse_math=False``): a rung named ``$x$`` would otherwise be parsed as mathtext, and one that
is not valid mathtext (``$\\frac$``) would fail the whole page.
"""

from __future__ import annotations

import io
from contextlib import contextmanager

STYLE = {"svg.hashsalt": "tunebench", "svg.fonttype": "none", "font.size": 9, "axes.spines.top": False, "axes.spines.right": False}
OK, FRONT, MUTED = "#1f77b4", "#d62728", "#999999"
LITERAL = {"parse_math": False}  # names and labels are text, never mathtext


@contextmanager
def _figure(height: float):
    """A pyplot-free Figure (no global state) under the deterministic style; yields (figure, axes)."""
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(6.4, height))
        yield fig, fig.add_subplot()


def _svg(fig) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # inline: drop the XML prolog and doctype


def _height(n_rows: int) -> float:
    return 1.2 + 0.28 * max(n_rows, 1)


def ladder_chart(frame, metric: str) -> str:
    """The ladder: ``metric`` per rung (rows in the frame's order, top down) with its 95% bootstrap interval
    (``ci_lo``, ``ci_hi``). Only rungs that ran take a row: the tables list the skipped ones."""
    rows = frame[frame["status"] == "ok"]
    with _figure(_height(len(rows))) as (fig, ax):
        y = list(range(len(rows)))[::-1]
        err = [(rows[metric] - rows["ci_lo"]).clip(lower=0), (rows["ci_hi"] - rows[metric]).clip(lower=0)]
        ax.errorbar(rows[metric], y, xerr=err, fmt="o", color=OK, capsize=3)
        ax.set_yticks(y, rows["rung"], **LITERAL)
        ax.set_ylim(-0.5, len(rows) - 0.5)
        ax.set_xlabel(f"{metric} (95% bootstrap CI)", **LITERAL)
        ax.grid(axis="x", alpha=0.3)
        return _svg(fig)


def pareto_front(xs: list[float], ys: list[float]) -> list[int]:
    """Indices of the points no other point beats on both cheaper-or-equal ``x`` and higher-or-equal ``y``.

    Written here because it is a sort and one pass (Kung et al. 1975 for two objectives); no library
    in our dependencies has it.
    """
    order = sorted(range(len(xs)), key=lambda i: (xs[i], -ys[i]))
    front, best = [], float("-inf")
    for i in order:
        if ys[i] > best:
            front.append(i)
            best = ys[i]
    return front


LABEL_PT = 7  # the points' labels, in points


def label_offsets(points: list[tuple[float, float]], names: list[str], right_edge: float, gap: float = LABEL_PT * 1.4) -> list[tuple[float, float, str]]:
    """Where each point's label goes, in points from the point (``dx``, ``dy``, horizontal alignment): right of
    the point, or left of it where it would pass ``right_edge``; labels whose spans would overlap are pushed up,
    one line apart, lowest point first. ``points`` are in points (display units / dpi * 72)."""
    placed: list[tuple[float, float, float]] = []  # left, right, baseline of each label placed
    out: list[tuple[float, float, str] | None] = [None] * len(points)
    for i in sorted(range(len(points)), key=lambda i: (points[i][1], points[i][0])):
        (x, y), width = points[i], 0.6 * LABEL_PT * len(names[i])
        right = x + 4 + width <= right_edge
        left_x, right_x = (x + 4, x + 4 + width) if right else (x - 4 - width, x - 4)
        at = y + 2
        for other_left, other_right, other_at in sorted(placed, key=lambda p: p[2]):
            if other_left < right_x and left_x < other_right and abs(other_at - at) < gap:
                at = other_at + gap
        placed.append((left_x, right_x, at))
        out[i] = (4 if right else -4, at - y, "left" if right else "right")
    return out


def _label_points(fig, ax, xs: list[float], ys: list[float], names: list[str]) -> None:
    """Each point's name beside it, labels kept apart (:func:`label_offsets`); a thin line to a label moved away."""
    scale = 72 / fig.dpi
    display = ax.transData.transform(list(zip(xs, ys))) * scale if xs else []
    right_edge = ax.transAxes.transform((1, 0))[0] * scale
    for (xi, yi), name, (dx, dy, ha) in zip(zip(xs, ys), names, label_offsets([tuple(p) for p in display], names, right_edge)):
        arrow = {"arrowprops": {"arrowstyle": "-", "color": MUTED, "lw": 0.5}} if abs(dy) > LABEL_PT else {}
        ax.annotate(name, (xi, yi), xytext=(dx, dy), textcoords="offset points", fontsize=LABEL_PT, ha=ha, va="bottom", **arrow, **LITERAL)


def tradeoff_chart(frame, metric: str, x: str, label: str, log: bool) -> str:
    """``metric`` against a cost column ``x`` (ok rungs with a value), the Pareto front drawn and marked.
    The legend sits above the axes, so no point or label hides under it; tick labels are plain numbers."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    rows = frame[(frame["status"] == "ok") & frame[x].notna()]
    with _figure(3.2) as (fig, ax):
        xs, ys = list(rows[x]), list(rows[metric])
        front = pareto_front(xs, ys)
        ax.scatter(xs, ys, color=OK, label="rung")
        ax.plot([xs[i] for i in front], [ys[i] for i in front], "-o", color=FRONT, drawstyle="steps-post", label="Pareto front")
        if log:
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        else:
            ax.set_xscale("symlog", linthresh=1e-4)  # free rungs (cost 0) beside paid ones
            ax.set_xlim(left=0)
        ax.margins(x=0.08, y=0.12)
        ax.autoscale_view()
        _label_points(fig, ax, xs, ys, list(rows["rung"]))
        ax.set_xlabel(label, **LITERAL)
        ax.set_ylabel(metric, **LITERAL)
        ax.legend(loc="lower left", bbox_to_anchor=(0, 1.01), ncol=2, frameon=False)
        ax.grid(alpha=0.3)
        return _svg(fig)


def ood_chart(frame, companions: dict[str, object], metric: str) -> str:
    """In-domain against each out-of-domain companion, per rung (grouped bars)."""
    rungs = list(frame.loc[frame["status"] == "ok", "rung"])
    series = {"in-domain": frame} | companions
    width = 0.8 / len(series)
    with _figure(_height(len(rungs))) as (fig, ax):
        bars = []
        for k, (name, part) in enumerate(series.items()):
            values = part[part["status"] == "ok"].set_index("rung")[metric].reindex(rungs)
            bars.append(ax.barh([i + k * width for i in range(len(rungs))], values.fillna(0), height=width))
        ax.set_yticks([i + 0.4 - width / 2 for i in range(len(rungs))], rungs, **LITERAL)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_xlabel(metric, **LITERAL)
        # beside the bars, never over them; labels given outright, so a name starting with "_" is not hidden
        legend = ax.legend(bars, list(series), loc="upper left", bbox_to_anchor=(1, 1), frameon=False)
        for text in legend.get_texts():  # companion goldsets' names
            text.set_parse_math(False)
        return _svg(fig)


def merge_curve_chart(curve: list[dict], chosen: float, select_label: str, metric: str) -> str:
    """A merge rung's alpha curve: the in-domain selection score against each out-of-domain score, one
    point per alpha (labelled), a line per companion in alpha order; the chosen alpha ringed."""
    places = sorted({k for point in curve for k in point["ood"]})
    with _figure(3.6) as (fig, ax):
        for place in places:
            points = [(p["ood"][place], p["in_domain"], p["alpha"]) for p in curve if place in p["ood"]]
            xs, ys, alphas = zip(*points)
            ax.plot(xs, ys, "-o", color=OK, markersize=4, label=place)
            for x, y, a in points:
                ax.annotate(f"{a:g}", (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7, color=MUTED)
            kept = [(x, y) for x, y, a in points if a == chosen]
            if kept:
                ax.plot(*kept[0], "o", markersize=11, markerfacecolor="none", markeredgecolor=FRONT, label=f"chosen: alpha = {chosen:g}")
        ax.set_xlabel(f"{metric} out of domain", **LITERAL)
        ax.set_ylabel(f"{metric} on {select_label} (in domain)", **LITERAL)
        ax.grid(alpha=0.3)
        legend = ax.legend(loc="upper left", bbox_to_anchor=(1, 1), frameon=False)
        for text in legend.get_texts():
            text.set_parse_math(False)
        return _svg(fig)
