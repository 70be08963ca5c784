"""Training curves as a PNG: one panel per metric, epoch on the x axis."""

from __future__ import annotations

import math
from pathlib import Path


def plot_curves(history: list[dict[str, float]], out_png: Path, title: str) -> None:
    """Draw every numeric key of ``history`` against the epoch and save the figure.

    Args:
        history: One dict per epoch; an ``"epoch"`` key gives the x value (else the list index).
            Keys sharing a prefix before ``/`` (``train/loss``, ``val/loss``) share a panel, keyed by
            the rest of the name; other keys get their own panel.
        out_png: Where to write the PNG (parent folders are created).
        title: Figure title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    panels: dict[str, dict[str, tuple[list[float], list[float]]]] = {}
    for index, row in enumerate(history):
        x = float(row.get("epoch", index))
        for key, value in row.items():
            if key == "epoch" or not isinstance(value, int | float) or not math.isfinite(float(value)):
                continue
            prefix, _, rest = key.partition("/")
            panel, series = (rest, prefix) if rest else (key, key)
            xs, ys = panels.setdefault(panel, {}).setdefault(series, ([], []))
            xs.append(x)
            ys.append(float(value))
    count = max(len(panels), 1)
    cols = min(3, count)
    rows = math.ceil(count / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, panel in zip(axes.flat, sorted(panels), strict=False):
        lines = panels[panel]
        for name, (xs, ys) in sorted(lines.items()):
            ax.plot(xs, ys, marker="o", markersize=3, label=name)
        only = next(iter(lines)) if len(lines) == 1 else panel
        ax.set_title(panel if only == panel else f"{panel} ({only})")
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        if len(lines) > 1:
            ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout(rect=(0.0, 0.0, 1.0, 0.97))
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
