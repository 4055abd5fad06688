"""Draw one hidden layer of the BioLeaF microcircuit and save it as ``microcircuit.png``.

Run ``.venv/bin/python docs/figures/microcircuit.py`` (matplotlib only, nothing is downloaded). The
figure shows layer ``l-1`` (here the input), the pyramidal cells of hidden layer ``l`` with their
basal, somatic and apical compartments, the interneurons of layer ``l`` (one per cell of the layer
above), and the output layer with its teacher, wired by the four synapse types ``W``, ``B``, ``P``
and ``Q``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch, Polygon  # noqa: E402

OUT = Path(__file__).with_suffix(".png")

COLOR = {"W": "#303030", "B": "#1f6fd1", "P": "#2a9d3c", "Q": "#d1342b", "teacher": "#e08a00",
         "nudge": "#8a8a8a"}
FILL = {"basal": "#d9e4f2", "apical": "#ead9f2", "soma": "#7d5aa6", "inter": "#f2c6c2",
        "output": "#7d5aa6", "input": "#bdbdbd"}

# geometry (data units)
PYR_X = [2.0, 4.2, 6.4]          # hidden pyramidal cells of layer l
IN_X = [1.6, 3.0, 4.4, 5.8, 7.0]  # cells of layer l-1
OUT_X = [3.0, 5.6]               # output cells (layer l+1 = L)
INT_X = [9.0, 10.4]              # interneurons of layer l, one per output cell
Y_IN, Y_BASAL, Y_SOMA, Y_TUFT, Y_OUT_BASAL, Y_OUT, Y_TEACHER = 0.0, 1.35, 2.2, 4.15, 5.35, 6.0, 7.25
Y_INT = 3.0


def arrow(ax, start, end, color, *, inhibitory=False, dashed=False, lw=1.3, rad=0.0, z=2):
    """A synapse from ``start`` to ``end``: an arrow head (excitatory) or a round head (inhibitory)."""
    style = "-|>" if not inhibitory else "-"
    a = FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=11, color=color, lw=lw,
                        linestyle="--" if dashed else "-", connectionstyle=f"arc3,rad={rad}",
                        shrinkA=0, shrinkB=0, zorder=z)
    ax.add_patch(a)
    if inhibitory:
        ax.add_patch(Circle(end, 0.07, color=color, zorder=z + 1))


def pyramidal(ax, x, label_compartments=False):
    """A three-compartment pyramidal cell: basal box, triangular soma, apical shaft and tuft."""
    ax.add_patch(FancyBboxPatch((x - 0.42, Y_BASAL - 0.14), 0.84, 0.28, boxstyle="round,pad=0.02,rounding_size=0.1",
                                fc=FILL["basal"], ec="#5a6f8c", lw=1.0, zorder=3))
    ax.plot([x, x], [Y_BASAL + 0.14, Y_SOMA - 0.25], color="#5a6f8c", lw=1.6, zorder=2)
    ax.add_patch(Polygon([(x - 0.3, Y_SOMA - 0.25), (x + 0.3, Y_SOMA - 0.25), (x, Y_SOMA + 0.3)], closed=True,
                         fc=FILL["soma"], ec="#3d2a57", lw=1.0, zorder=4))
    ax.plot([x, x], [Y_SOMA + 0.3, Y_TUFT - 0.16], color="#8a6fa8", lw=1.6, zorder=2)
    ax.add_patch(FancyBboxPatch((x - 0.5, Y_TUFT - 0.16), 1.0, 0.32, boxstyle="round,pad=0.02,rounding_size=0.12",
                                fc=FILL["apical"], ec="#8a6fa8", lw=1.0, zorder=3))
    if label_compartments:
        kw = dict(fontsize=8.5, ha="right", va="center", color="#333333")
        ax.text(x - 0.6, Y_TUFT, "apical\n$v^A$", **kw)
        ax.text(x - 0.38, Y_SOMA - 0.02, "soma", **kw)
        ax.text(x - 0.55, Y_BASAL, "basal\n$v^B$", **kw)


def draw(out: Path = OUT) -> Path:
    fig, ax = plt.subplots(figsize=(10.5, 8.4))
    ax.set_xlim(-0.6, 13.9)
    ax.set_ylim(-0.45, 7.7)
    ax.set_aspect("equal")
    ax.axis("off")

    # layer l-1 (input spikes) -> basal: W_l
    for xi in IN_X:
        ax.add_patch(Circle((xi, Y_IN), 0.2, fc=FILL["input"], ec="#555555", lw=1.0, zorder=4))
        for xp in PYR_X:
            arrow(ax, (xi, Y_IN + 0.2), (xp, Y_BASAL - 0.16), COLOR["W"], lw=0.6)

    for i, xp in enumerate(PYR_X):
        pyramidal(ax, xp, label_compartments=(i == 0))

    # pyramidal soma -> output basal: W_{l+1}; each axon rises beside its apical shaft, then fans out
    for xp in PYR_X:
        ax_x, top = xp + 0.66, Y_TUFT + 0.5
        ax.plot([xp + 0.22, ax_x, ax_x], [Y_SOMA - 0.16, Y_SOMA - 0.16, top], color=COLOR["W"], lw=0.9, zorder=1)
        for xo in OUT_X:
            arrow(ax, (ax_x, top), (xo + 0.05, Y_OUT_BASAL - 0.14), COLOR["W"], lw=0.7, z=1)

    # pyramidal soma -> interneurons: P_l
    for xp in PYR_X:
        for xn in INT_X:
            arrow(ax, (xp + 0.18, Y_SOMA + 0.05), (xn - 0.2, Y_INT - 0.05), COLOR["P"], lw=0.8, rad=-0.12)

    # output layer with basal compartment, and its teacher
    for xo in OUT_X:
        ax.add_patch(FancyBboxPatch((xo - 0.38, Y_OUT_BASAL - 0.13), 0.76, 0.26,
                                    boxstyle="round,pad=0.02,rounding_size=0.1", fc=FILL["basal"], ec="#5a6f8c",
                                    lw=1.0, zorder=3))
        ax.plot([xo, xo], [Y_OUT_BASAL + 0.13, Y_OUT - 0.25], color="#5a6f8c", lw=1.6, zorder=2)
        ax.add_patch(Circle((xo, Y_OUT), 0.25, fc=FILL["output"], ec="#3d2a57", lw=1.0, zorder=4))
    ax.add_patch(FancyBboxPatch((1.6, Y_TEACHER - 0.3), 5.4, 0.6, boxstyle="round,pad=0.03,rounding_size=0.15",
                                fc="#fde9c7", ec=COLOR["teacher"], lw=1.2, zorder=3))
    ax.text(4.3, Y_TEACHER, "teacher: target counts $y_k$ (label high, others low)", ha="center", va="center",
            fontsize=9)
    for xo in OUT_X:
        arrow(ax, (xo, Y_TEACHER - 0.33), (xo, Y_OUT + 0.27), COLOR["teacher"], lw=1.6)
    ax.text(OUT_X[1] + 0.12, (Y_TEACHER + Y_OUT) / 2 - 0.05, "teacher current $c_k(t)$", fontsize=8.5,
            color=COLOR["teacher"], va="center")

    # output -> apical: B_l (top-down); drawn from the output soma's left side down to the tufts
    for xo in OUT_X:
        for xp in PYR_X:
            side = -1 if xp < xo else 1  # leave the soma on the side that faces the target cell
            arrow(ax, (xo + side * 0.25, Y_OUT), (xp - 0.1, Y_TUFT + 0.17), COLOR["B"], lw=1.0,
                  rad=0.12 * side, z=2)

    # interneurons; partner nudge from output cell k to interneuron k; Q_l to the tufts
    for k, xn in enumerate(INT_X):
        ax.add_patch(Circle((xn, Y_INT), 0.22, fc=FILL["inter"], ec=COLOR["Q"], lw=1.0, zorder=4))
        arrow(ax, (OUT_X[k] + 0.25, Y_OUT), (xn + 0.05, Y_INT + 0.24), COLOR["nudge"], dashed=True, lw=1.0,
              rad=-0.25 if k == 0 else -0.1)
        for xp in PYR_X:
            arrow(ax, (xn - 0.16, Y_INT + 0.15), (xp + 0.25, Y_TUFT - 0.2), COLOR["Q"], inhibitory=True, lw=0.9,
                  rad=0.05)

    # layer captions
    cap = dict(fontsize=10, ha="left", va="center", fontweight="bold", color="#222222")
    ax.text(11.3, Y_OUT, "output layer $L$", **cap)
    ax.text(11.3, Y_SOMA + 0.4, "hidden layer $l$:\npyramidal cells\nand interneurons", **cap)
    ax.text(9.7, Y_INT - 0.35, "interneurons of layer $l$\n(one per output cell)", fontsize=8.5, ha="center",
            va="top", color="#555555")
    ax.text(7.5, Y_IN, "layer $l-1$ (input spikes)", fontsize=10, ha="left", va="center", fontweight="bold",
            color="#222222")

    # synapse labels next to the arrows they name
    lab = dict(fontsize=11, fontweight="bold", ha="center", va="center")
    ax.text(0.9, 0.75, "$W_l$", color=COLOR["W"], **lab)
    ax.text(7.5, 4.3, "$W_{l+1}$", color=COLOR["W"], **lab)
    ax.text(1.0, 5.2, "$B_l$", color=COLOR["B"], **lab)
    ax.text(7.7, 2.05, "$P_l$", color=COLOR["P"], **lab)
    ax.text(8.55, 3.95, "$Q_l$", color=COLOR["Q"], **lab)

    legend = [
        Line2D([], [], color=COLOR["W"], lw=1.6, label="$W$  bottom-up: layer below $\\to$ basal"),
        Line2D([], [], color=COLOR["B"], lw=1.6, label="$B$  top-down: layer above $\\to$ apical"),
        Line2D([], [], color=COLOR["P"], lw=1.6, label="$P$  pyramidal $\\to$ interneuron (predicts the layer above)"),
        Line2D([], [], color=COLOR["Q"], lw=1.6, marker="o", markersize=4,
               label="$Q$  interneuron $\\to$ apical (inhibition)"),
        Line2D([], [], color=COLOR["nudge"], lw=1.2, ls="--", label="partner cell above $\\to$ its interneuron"),
        Line2D([], [], color=COLOR["teacher"], lw=1.6, label="teacher current, output cells only"),
    ]
    ax.legend(handles=legend, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, fontsize=8.5, frameon=False)
    ax.set_title("One hidden layer of the BioLeaF microcircuit", fontsize=12, pad=4)
    fig.tight_layout()
    fig.savefig(out, dpi=130, bbox_inches="tight", pad_inches=0.1)
    plt.close(fig)
    return out


if __name__ == "__main__":
    print(draw(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT))
