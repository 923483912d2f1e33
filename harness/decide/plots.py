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
    """The ladder: ``metric`` per rung with its 95% bootstrap interval (``ci_lo``, ``ci_hi``); skipped rungs say so."""
    with _figure(_height(len(frame))) as (fig, ax):
        y = list(range(len(frame)))[::-1]
        ok = frame["status"] == "ok"
        rows = frame[ok]
        ys = [y[i] for i, flag in enumerate(ok) if flag]
        err = [(rows[metric] - rows["ci_lo"]).clip(lower=0), (rows["ci_hi"] - rows[metric]).clip(lower=0)]
        ax.errorbar(rows[metric], ys, xerr=err, fmt="o", color=OK, capsize=3)
        for yi, (_, row) in zip(y, frame.iterrows()):
            if row["status"] != "ok":
                ax.annotate("skipped", (0.01, yi), xycoords=("axes fraction", "data"), color=MUTED, va="center")
        ax.set_yticks(y, frame["rung"], **LITERAL)
        ax.set_ylim(-0.5, len(frame) - 0.5)
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


def tradeoff_chart(frame, metric: str, x: str, label: str, log: bool) -> str:
    """``metric`` against a cost column ``x`` (ok rungs with a value), the Pareto front drawn and marked."""
    rows = frame[(frame["status"] == "ok") & frame[x].notna()]
    with _figure(3.2) as (fig, ax):
        xs, ys = list(rows[x]), list(rows[metric])
        front = pareto_front(xs, ys)
        ax.scatter(xs, ys, color=OK, label="rung")
        ax.plot([xs[i] for i in front], [ys[i] for i in front], "-o", color=FRONT, drawstyle="steps-post", label="Pareto front")
        for xi, yi, name in zip(xs, ys, rows["rung"]):
            ax.annotate(name, (xi, yi), xytext=(4, 3), textcoords="offset points", fontsize=7, **LITERAL)
        if log:
            ax.set_xscale("log")
        else:
            ax.set_xscale("symlog", linthresh=1e-4)  # free rungs (cost 0) beside paid ones
            ax.set_xlim(left=0)
        ax.set_xlabel(label, **LITERAL)
        ax.set_ylabel(metric, **LITERAL)
        ax.legend(loc="lower right", frameon=False)
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
