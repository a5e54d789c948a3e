"""Run artifacts: atomic file writes, the metrics table and training-curve plots.

Used by training, serving and the experiment drivers alike (nothing here reads up the pipeline)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` then rename over ``path``: readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; a run folder's files are as readable as any other
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write(path, lambda p: Path(p).write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n"))


def metrics_table(results: dict[str, dict[str, float]], ks: list[int]) -> str:
    """Markdown table: one row per split/label, columns metric@K."""
    names = list(dict.fromkeys(c.split("@")[0] for res in results.values() for c in res if "@" in c))
    cols = [f"{m}@{k}" for k in ks for m in names]  # the metrics in the evaluator's order
    lines = ["| | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for label, res in results.items():
        lines.append(f"| {label} | " + " | ".join(f"{res[c]:.4f}" if c in res else "" for c in cols) + " |")
    return "\n".join(lines)


def compact_table(results: dict[str, dict[str, float]], ks: list[int]) -> str:
    """Recall and NDCG at 10 and 20 (those in ``ks``), one row per label: fits 80 columns
    (the full table is in metrics.json)."""
    cols = [f"{m}@{k}" for m in ("recall", "ndcg") for k in (10, 20) if k in ks] or \
        [f"{m}@{k}" for m in ("recall", "ndcg") for k in ks[:2]]
    short = [c.replace("recall", "Recall").replace("ndcg", "NDCG") for c in cols]
    lines = ["|       | " + " | ".join(f"{c:>9}" for c in short) + " |",
             "|-------|" + "|".join("-" * 10 + ":" for _ in cols) + "|"]
    for label, res in results.items():
        lines.append(f"| {label:<5} | " + " | ".join(f"{res[c]:>9.4f}" if c in res else " " * 9 for c in cols) + " |")
    return "\n".join(lines)


def plot_curves(history: list[dict[str, Any]], path: str | Path, metric: str = "recall@20") -> None:
    """Loss terms and valid ``metric`` per epoch, saved as a PNG (atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    if history:
        for term in history[0]["loss"]:
            ax1.plot(epochs, [h["loss"].get(term, float("nan")) for h in history], label=term)
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss (weighted term)")
    ax1.set_yscale("log")
    ax1.legend()
    ax1.set_title("training loss")
    ev = [(h["epoch"], h["valid"][metric]) for h in history if h.get("valid")]
    if ev:
        ax2.plot([e for e, _ in ev], [v for _, v in ev], marker=".")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel(f"valid {metric}")
    ax2.set_title(f"valid {metric}")
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=100))
    plt.close(fig)


def bar_colours(n: int) -> list[tuple[float, float, float, float]]:
    """``n`` bar colours, no two alike up to 20 (tab10 up to 10 rows, tab20 beyond; past 20 the
    colours repeat and :func:`plot_bars` hatches the repeats)."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def plot_bars(rows: dict[str, dict[str, tuple[float, float]]], metrics: tuple[str, ...] | list[str],
              path: str | Path, title: str) -> None:
    """Grouped bars: one group per metric, one bar per row label at its (mean, std)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(rows)
    x = np.arange(len(metrics))
    w = 0.8 / max(1, len(names))
    colours = bar_colours(len(names))
    fig, ax = plt.subplots(figsize=(4.5 + 1.6 * len(metrics), 4))  # 2.5 of it for the legend beside the bars
    for n, name in enumerate(names):
        ax.bar(x + n * w - 0.4 + w / 2, [rows[name][m][0] for m in metrics], w,
               yerr=[rows[name][m][1] for m in metrics], capsize=3, label=name, color=colours[n],
               hatch="//" if n >= 20 else None)
    ax.set_xticks(x, [m.replace("recall", "Recall").replace("ndcg", "NDCG") for m in metrics])
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the bars, never over them
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=110))
    plt.close(fig)
