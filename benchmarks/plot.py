"""Draw the main comparisons of ``benchmarks/results.json`` into ``docs/benchmarks.png``.

``python -m benchmarks.plot [results.json] [out.png]`` (matplotlib, Agg backend).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
COLORS = {
    "ours-store": "#1f77b4",
    "ours-path": "#6baed6",
    "ours-redis": "#9ecae1",
    "dfc-plain": "#d62728",
    "dfc-plain-path": "#ff9896",
    "dfc-file": "#e377c2",
    "send_file": "#7f7f7f",
    "file": "#1f77b4",
    "data-uri": "#d62728",
}


def _bars(ax: Axes, groups: list[str], series: dict[str, list[float]], *, fmt: str = "{:.0f}") -> None:
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        bars = ax.bar(xs, values, width, label=name, color=COLORS.get(name))
        ax.bar_label(bars, [fmt.format(v) for v in values], fontsize=6, rotation=90, padding=2)
    ax.set_xticks(range(len(groups)), groups)
    ax.margins(y=0.25)


def plot(results: dict[str, Any], out: Path) -> None:
    fig, axes = plt.subplots(2, 3, figsize=(17, 9.5))
    serving = results["serving"]
    sizes = sorted({r["size"] for r in serving})
    labels = [f"{s // MiB} MiB" for s in sizes]
    variants = list(dict.fromkeys(r["variant"] for r in serving))
    by = {(r["variant"], r["size"]): r for r in serving}
    largest = sizes[-1]

    ax = axes[0][0]
    _bars(ax, labels, {v: [by[(v, s)]["mib_per_s"] for s in sizes] for v in variants})
    ax.set_title("1. Serving a registered file, MiB/s\n(median; higher is better)")
    ax.legend(fontsize=7, ncol=2, loc="upper left")

    ax = axes[0][1]
    _bars(
        ax,
        labels,
        {v: [by[(v, s)]["median_server_cpu_seconds"] * 1e3 for s in sizes] for v in variants},
        fmt="{:.1f}",
    )
    ax.set_yscale("log")
    ax.set_title("2. Server CPU per request, ms\n(median; lower is better)")

    ax = axes[0][2]
    e2e = {(r["mode"], r["size"]): r for r in results["end_to_end"]}
    esizes = sorted({r["size"] for r in results["end_to_end"]})
    _bars(
        ax,
        [f"{s // MiB} MiB" for s in esizes],
        {m: [e2e[(m, s)]["median_seconds"] * 1e3 for s in esizes] for m in ("file", "data-uri")},
        fmt="{:.0f} ms",
    )
    ax.set_yscale("log")
    ax.set_title("3. Callback to last byte, ms\n(median; lower is better)")
    ax.legend(["FileOutput (POST + GET)", "base64 data URI (POST)"], fontsize=7, loc="upper left")

    ax = axes[1][0]
    growth = {v: by[(v, largest)]["max_memory_growth"] / MiB for v in variants}
    growth["e2e: FileOutput"] = e2e[("file", esizes[-1])]["max_memory_growth"] / MiB
    growth["e2e: data URI"] = e2e[("data-uri", esizes[-1])]["max_memory_growth"] / MiB
    names = list(growth)
    colors = [COLORS.get(n, COLORS["file"] if "FileOutput" in n else COLORS["data-uri"]) for n in names]
    bars = ax.bar(range(len(names)), list(growth.values()), color=colors)
    ax.bar_label(bars, [f"{v:.1f}" for v in growth.values()], fontsize=7)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
    ax.axhline(32, color="black", linestyle=":", linewidth=1)
    ax.set_title(f"2. Server peak memory growth, MiB\n(serving a {largest // MiB} MiB file; dotted: 32 MiB)")

    ax = axes[1][1]
    overhead = results["transform_overhead"]
    _bars(
        ax,
        [r["backend"] for r in overhead],
        {
            "FileOutput": [r["file_seconds_per_callback"] * 1e3 for r in overhead],
            "plain Output": [r["plain_seconds_per_callback"] * 1e3 for r in overhead],
        },
        fmt="{:.2f} ms",
    )
    ax.set_title(
        "4. Time per callback returning a 10 KiB file, ms\n"
        + ", ".join(f"{r['backend']} x{r['ratio']:.2f}" for r in overhead)
    )
    ax.legend(fontsize=7)

    ax = axes[1][2]
    # A path kept by reference costs the same whatever its size: MiB/s says nothing there.
    reg = [r for r in results["registration"] if r["stored"] == "copy"]
    rsizes = sorted({r["size"] for r in reg})
    keys = list(dict.fromkeys((r["backend"], r["value"]) for r in reg))
    rby = {(r["backend"], r["value"], r["size"]): r for r in reg}
    _bars(
        ax,
        [f"{s // MiB} MiB" for s in rsizes],
        {f"{b}, {v}": [rby[(b, v, s)]["mib_per_s"] for s in rsizes] for b, v in keys},
    )
    ax.set_yscale("log")
    ax.set_ylim(top=ax.get_ylim()[1] * 20)  # room for the legend
    ax.set_title("5. register(), MiB/s (copying stores;\npaths by reference take constant time)")
    ax.legend(fontsize=6, ncol=2, loc="upper left")

    m = results["machine"]
    fig.suptitle(
        f"dfc_transform benchmarks: {m['cpu']}, {m['cores']} cores, Python {m['python']}, "
        f"{results['started']} ({results['config']['mode']})",
        fontsize=11,
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    source = Path(args[0]) if args else ROOT / "benchmarks" / "results.json"
    out = Path(args[1]) if len(args) > 1 else ROOT / "docs" / "benchmarks.png"
    plot(json.loads(source.read_text()), out)
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
