"""PSNR against wall-clock time, one panel per task, one line per system.

    .venv-peers/bin/python lab/peers/plot_trace.py RESULTS.json OUT.png

RESULTS.json (written by lab/compare_mitsuba.py):
    {"machine": str, "tasks": [{"name": str, "systems": [{"name": str, "times": [...],
                                                          "psnr": [...]}, ...]}, ...]}
Needs only matplotlib (in .venv-peers).
"""
from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot(results: dict, out: str) -> None:
    tasks = results["tasks"]
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4.5), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for system in task["systems"]:
            # Time 0 cannot go on a log axis: start each line at its first positive time.
            points = [(t, p) for t, p in zip(system["times"], system["psnr"]) if t > 0]
            if points:
                ax.plot(*zip(*points), marker="o", markersize=3, label=system["name"])
        ax.set_xscale("log")
        ax.set_xlabel("wall-clock time (s)")
        ax.set_ylabel("PSNR (dB)")
        ax.set_title(task["name"], fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(results.get("machine", ""), fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[0]) as f:
        plot(json.load(f), argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
