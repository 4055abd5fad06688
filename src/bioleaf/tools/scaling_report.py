r"""The report of ``bioleaf bench --scaling`` (:mod:`bioleaf.tools.scaling`): the tables, the curves and the
slopes of cost growth.

A trainer's cost growth along a sweep is the least-squares slope of :math:`\log c` against :math:`\log x` over
the sweep's points, :math:`c \propto x^{k}`: :math:`c` its seconds per batch (``time_slope``) or its peak training
memory (``memory_slope``), :math:`x` the swept width, ``T`` or batch. A slope of 1 is linear growth, 2 quadratic.
"""

from __future__ import annotations

import math
from pathlib import Path

from bioleaf.tools.bench.trainers import BIOLEAF_TRAINERS
from bioleaf.training.checkpoint import atomic_write_bytes, atomic_write_json

SCALING_TRAINERS = ("bioleaf_one", "bioleaf_local", "bioleaf", "bptt", "snntorch")
"""The trainers of every point (:data:`bioleaf.tools.bench.trainers.TRAINERS`: ``bioleaf`` is the idealised circuit)."""
LABELS = {"bioleaf_one": "BioLeaF, fashion-mnist-one-presentation", "bioleaf_local": "BioLeaF, fashion-mnist-local",
          "bioleaf": "BioLeaF, idealised", "bptt": "our bptt", "snntorch": "snnTorch BPTT"}
IDEALISED = "bioleaf"
"""The circuit whose peak memory every BioLeaF circuit's is set against (``memory_over_idealised``)."""
COSTS = {"time_slope": "seconds per batch", "memory_slope": "peak training memory"}
"""The costs whose growth :func:`scaling_slopes` fits, and what each one is."""


def loglog_slope(xs: list[float], ys: list[float | None]) -> float | None:
    r"""The least-squares slope of :math:`\log y` against :math:`\log x` over the points with a positive ``y``
    (``None`` with fewer than two such points)."""
    pairs = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if y is not None and y > 0]
    if len({x for x, _ in pairs}) < 2:
        return None
    mx, my = (sum(v) / len(pairs) for v in zip(*pairs))
    return sum((x - mx) * (y - my) for x, y in pairs) / sum((x - mx) ** 2 for x, _ in pairs)


def scaling_slopes(rows: list[dict]) -> list[dict]:
    """Every trainer's cost growth along every sweep of more than one point: ``{sweep, rule, time_slope,
    memory_slope}`` (:func:`loglog_slope` of its seconds per batch and of its peak memory against the swept size)."""
    slopes = []
    for sweep, mine in _sweeps(rows).items():
        if len({r["value"] for r in mine}) < 2:
            continue
        for name in SCALING_TRAINERS:
            at = [r for r in mine if r["rule"] == name]
            seconds = [None if r["samples_per_s"] is None else r["batch"] / r["samples_per_s"] for r in at]
            slopes.append({"sweep": sweep, "rule": name, "time_slope": loglog_slope([r["value"] for r in at], seconds),
                           "memory_slope": loglog_slope([r["value"] for r in at], [r["peak_mb"] for r in at])})
    return slopes


def write_scaling(result: dict, out: Path) -> list[Path]:
    """``results.json``, ``results.md`` and ``scaling.png`` of a scaling run into ``out``."""
    paths = [out / "results.json", out / "results.md", out / "scaling.png"]
    atomic_write_json(paths[0], result)
    atomic_write_bytes(paths[1], scaling_markdown(result).encode())
    scaling_plot(result, paths[2])
    return paths


def _sweeps(rows: list[dict]) -> dict[str, list[dict]]:
    """The rows of each sweep, in their order."""
    sweeps: dict[str, list[dict]] = {}
    for r in rows:
        sweeps.setdefault(r["sweep"], []).append(r)
    return sweeps


def _title(sweep: str, rows: list[dict]) -> str:
    """The heading of a sweep's table and axis: what is swept, and the shape held while it is."""
    r = rows[0]
    sizes = r["arch"].split("-")
    held = {"width": f"{sizes[0]}-W-W-{sizes[-1]}, T={r['steps']}, batch {r['batch']}",
            "T": f"{r['arch']}, batch {r['batch']}", "batch": f"{r['arch']}, T={r['steps']}",
            "community": f"one Linear+LIF layer, {r['arch']}, T={r['steps']}, batch {r['batch']}"}[sweep]
    return {"width": "Hidden width W", "T": "Time steps T", "batch": "Batch size",
            "community": "Community benchmark shape"}[sweep] + f" ({held})"


def _number(x: float) -> str:
    """Three significant digits, or a whole number from 100 on."""
    return f"{x:.3g}" if x < 100 else f"{x:.0f}"


def _cell(row: dict, key: str) -> str:
    """A table cell: the figure ``key`` of a row (a speed with its ratio to snnTorch's), ``OOM`` or ``-``."""
    if row[key] is None:
        return "OOM" if row["oom"] else "-"
    ratio = row["over_snntorch"] if key == "samples_per_s" and row["rule"] != "snntorch" else None
    return _number(row[key]) + ("" if ratio is None else f" ({ratio:.2f}x)")


def scaling_markdown(result: dict) -> str:
    """One table per sweep: samples/s (x snnTorch's, same rotation) and peak training memory of every trainer, then
    each BioLeaF circuit's limit efficiency and memory over the idealised circuit's; then the slopes."""
    where = f"{result['device']}" + (f" ({result['gpu']})" if result.get("gpu") else "")
    lines = [f"Training speed (samples/s, in brackets relative to snnTorch's in the same rotation) and peak "
             f"training memory (MB above the model and data) on {where}, torch {result['torch_version']}, "
             f"snnTorch {result['snntorch_version']}; OOM: out of memory. Limit: the replay of a BioLeaF "
             f"circuit's unavoidable work over its batch time; memory x idealised: its peak memory over the "
             f"idealised circuit's.", ""]
    header = " | ".join(f"{LABELS[n]} samples/s | {LABELS[n]} MB" for n in SCALING_TRAINERS)
    circuits = [n for n in SCALING_TRAINERS if n in BIOLEAF_TRAINERS]
    ratios = [(n, "limit_efficiency", "limit") for n in circuits]
    ratios += [(n, "memory_over_idealised", "memory x idealised") for n in circuits if n != IDEALISED]
    against = " | ".join(f"{LABELS[n]} {what}" for n, _, what in ratios)
    for sweep, rows in _sweeps(result["rows"]).items():
        values = list(dict.fromkeys(r["value"] for r in rows))
        at = {v: {r["rule"]: r for r in rows if r["value"] == v} for v in values}
        lines += [f"**{_title(sweep, rows)}**", "", f"| {sweep} | {header} |",
                  "|---" * (1 + 2 * len(SCALING_TRAINERS)) + "|"]
        lines += [f"| {v} | " + " | ".join(f"{_cell(at[v][n], 'samples_per_s')} | {_cell(at[v][n], 'peak_mb')}"
                                           for n in SCALING_TRAINERS) + " |" for v in values]
        lines += ["", f"| {sweep} | {against} |", "|---" * (1 + len(ratios)) + "|"]
        lines += [f"| {v} | " + " | ".join(_ratio(at[v][n], key) for n, key, _ in ratios) + " |" for v in values]
        lines.append("")
    return "\n".join(lines + slopes_markdown(result.get("slopes", [])))


def _ratio(row: dict, key: str) -> str:
    """A ratio cell: two decimals, ``OOM`` or ``-``."""
    value = row.get(key)
    return f"{value:.2f}" if value is not None else "OOM" if row["oom"] else "-"


def slopes_markdown(slopes: list[dict]) -> list[str]:
    """The table of :func:`scaling_slopes`: one row per trainer, the slope of each cost along each sweep."""
    sweeps = list(dict.fromkeys(s["sweep"] for s in slopes))
    if not sweeps:
        return []
    at = {(s["sweep"], s["rule"]): s for s in slopes}
    lines = ["**Cost growth: log-log slopes of seconds per batch and of peak memory against the swept size**", "",
             "| trainer | " + " | ".join(f"{sweep}: time | {sweep}: memory" for sweep in sweeps) + " |",
             "|---" * (1 + 2 * len(sweeps)) + "|"]
    for name in SCALING_TRAINERS:
        cells = [f"{v:.2f}" if (v := at[sweep, name][key]) is not None else "-"
                 for sweep in sweeps for key in COSTS]
        lines.append(f"| {LABELS[name]} | " + " | ".join(cells) + " |")
    return lines + [""]


def scaling_plot(result: dict, path: Path) -> Path:
    """Speed and memory against each swept variable (log-log), one line per trainer; ``OOM`` marks a trainer
    that ran out of memory at a value."""
    from bioleaf.tools.plots import plt, save_png

    sweeps = {k: v for k, v in _sweeps(result["rows"]).items() if len({r["value"] for r in v}) > 1}
    fig, axes = plt.subplots(len(sweeps), 2, figsize=(10, 3.2 * len(sweeps)), squeeze=False)
    for row_axes, (sweep, rows) in zip(axes, sweeps.items()):
        for ax, key, unit in zip(row_axes, ("samples_per_s", "peak_mb"), ("samples/s", "peak training MB")):
            for i, name in enumerate(SCALING_TRAINERS):
                mine = [r for r in rows if r["rule"] == name]
                ax.plot([r["value"] for r in mine], [float("nan") if r[key] is None else r[key] for r in mine],
                        marker="o", color=f"C{i}", label=LABELS[name])
                for r in mine:
                    if r["oom"]:
                        ax.annotate("OOM", (r["value"], 0.92 - 0.07 * i), xycoords=("data", "axes fraction"),
                                    color=f"C{i}", ha="center", fontsize=8)
            ax.set(xscale="log", yscale="log", xlabel=_title(sweep, rows), ylabel=unit)
            values = sorted({r["value"] for r in rows})
            ax.set_xticks(values, [str(v) for v in values])
            ax.tick_params(axis="x", which="minor", bottom=False, labelbottom=False)
            ax.grid(alpha=0.3, which="both")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"bioleaf bench --scaling on {result['device']}", fontsize=10)
    return save_png(fig, path)


def scaling_summary(result: dict, out: Path) -> str:
    """What ``bioleaf bench --scaling`` prints without ``--json``: the tables and where the files went."""
    return scaling_markdown(result) + f"wrote {out / 'results.json'}, {out / 'results.md'}, {out / 'scaling.png'}"
