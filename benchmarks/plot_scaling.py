"""Draw the scaling benchmark's results: cost against size, log-log, with growth exponents.

    python benchmarks/plot_scaling.py RESULTS.json [OUT_STEM]

Reads the entries ``test_scaling.py`` wrote, keeps the last one per (size, step), and writes
``OUT_STEM.svg`` and ``OUT_STEM.png`` (default ``benchmarks/scaling``): CPU seconds and peak
memory against the number of images, one line per step or plugin. Prints a Markdown table of
the growth exponent between consecutive sizes (``log(c2 / c1) / log(n2 / n1)``) and from 5k to
100k, for CPU and wall seconds. CPU seconds (every thread and worker process) measure the work
itself; wall seconds on a shared machine also measure the neighbours.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STEP_ORDER = ["ingest_cold", "ingest_warm", "audit", "split", "features"]


def load(path: Path) -> dict[str, dict[int, dict]]:
    """The last measured entry per (step, size); a step that failed (out of memory, a
    timeout) is not a point, and is printed instead."""
    series: dict[str, dict[int, dict]] = {}
    for entry in json.loads(path.read_text())["runs"]:
        if entry.get("status") == "error":
            print(f"FAILED at {entry['n']} images: {entry['label']}: {entry['error'][-300:]}",
                  file=sys.stderr)
            series.get(entry["label"], {}).pop(int(entry["n"]), None)
            continue
        series.setdefault(entry["label"], {})[int(entry["n"])] = entry
    order = STEP_ORDER + sorted(k for k in series if k not in STEP_ORDER)
    return {k: series[k] for k in order if k in series}


def exponent(points: dict[int, dict], key: str, a: int, b: int) -> float | None:
    if a not in points or b not in points:
        return None
    ca, cb = points[a].get(key), points[b].get(key)
    if not ca or not cb or ca <= 0 or cb <= 0:
        return None
    return math.log(cb / ca) / math.log(b / a)


def table(series: dict[str, dict[int, dict]]) -> str:
    sizes = sorted({n for points in series.values() for n in points})
    steps = list(zip(sizes, sizes[1:], strict=False))
    head = ["step"] + [f"{a // 1000}k→{b // 1000}k" for a, b in steps] + ["5k→100k"]
    lines = ["| " + " | ".join(head) + " | CPU s at each size | peak MB at each size |",
             "|" + "---|" * (len(head) + 2)]

    def fmt(x: float | None) -> str:
        return "–" if x is None else f"{x:.2f}"

    for label, points in series.items():
        cells = []
        for a, b in [*steps, (5000, 100000)]:
            cpu, wall = exponent(points, "cpu_s", a, b), exponent(points, "wall_s", a, b)
            cells.append(f"{fmt(cpu)} ({fmt(wall)})")
        cpus = " / ".join(f"{points[n]['cpu_s']:.1f}" if n in points else "–" for n in sizes)
        mems = " / ".join(f"{points[n]['peak_rss_mb']:.0f}" if n in points else "–"
                          for n in sizes)
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {cpus} | {mems} |")
    return "\n".join(lines)


def plot(series: dict[str, dict[int, dict]], stem: Path) -> None:
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(13, 5.5))
    for ax in (ax_t, ax_m):
        ax.set_prop_cycle(color=plt.cm.tab20.colors)
    for label, points in series.items():
        sizes = sorted(points)
        style = "-o" if not label.startswith("fit:") else "--s"
        ax_t.plot(sizes, [max(points[n]["cpu_s"], 1e-3) for n in sizes], style, label=label,
                  markersize=4)
        ax_m.plot(sizes, [points[n]["peak_rss_mb"] for n in sizes], style, label=label,
                  markersize=4)
    sizes = sorted({n for points in series.values() for n in points})
    for ax, title, unit in ((ax_t, "CPU seconds per step", "CPU s"),
                            (ax_m, "peak resident memory of the step's process", "MB")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("images (train/; test/ adds 5 %)")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    lo, hi = sizes[0], sizes[-1]
    ref = [c for c in (series.get("ingest_cold", {}).get(lo, {}).get("cpu_s"),) if c]
    if ref:  # a slope-1 guide through the first cold ingestion
        ax_t.plot([lo, hi], [ref[0], ref[0] * hi / lo], ":", color="grey", label="slope 1")
    ax_m.axhline(24 * 1024, color="red", linestyle=":", label="24 GB")
    ax_t.legend(fontsize=7, ncol=2)
    fig.suptitle("cxrbench cost against the number of images (synthetic 128 px; deep fits: "
                 "60 batches of 32)", fontsize=10)
    fig.tight_layout()
    for suffix in (".svg", ".png"):
        fig.savefig(stem.with_suffix(suffix), dpi=110)


def main() -> None:
    path = Path(sys.argv[1])
    stem = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).parent / "scaling"
    series = load(path)
    plot(series, stem)
    print(table(series))


if __name__ == "__main__":
    main()
