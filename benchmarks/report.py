"""Ratios, targets and the markdown tables of a benchmark run (``results.json``)."""

from __future__ import annotations

from typing import Any

MiB = 1024 * 1024

#: (label, numerator variant, denominator variant) of the serving ratios.
SERVING_RATIOS = [
    ("ours-store / send_file", "ours-store", "send_file"),
    ("ours-path / send_file", "ours-path", "send_file"),
    ("ours-redis / send_file", "ours-redis", "send_file"),
    ("ours-store / dfc-plain", "ours-store", "dfc-plain"),
    ("ours-path / dfc-plain-path", "ours-path", "dfc-plain-path"),
    ("ours-store / dfc-file", "ours-store", "dfc-file"),
]
OURS = ("ours-store", "ours-path", "ours-redis")


def _mib(n: float) -> str:
    return f"{n / MiB:g}" if n >= MiB else f"{n / 1024:g} KiB"


def _sizes(rows: list[dict[str, Any]]) -> list[int]:
    return sorted({r["size"] for r in rows})


def _by(rows: list[dict[str, Any]], key: str) -> dict[tuple[str, int], dict[str, Any]]:
    return {(r[key], r["size"]): r for r in rows}


def ratios(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Throughput ratios of the serving part, by label and size (MiB, as a string)."""
    rows = _by(results["serving"], "variant")
    out: dict[str, dict[str, float]] = {}
    for label, num, den in SERVING_RATIOS:
        out[label] = {
            f"{size // MiB}": rows[(num, size)]["mib_per_s"] / rows[(den, size)]["mib_per_s"]
            for size in _sizes(results["serving"])
        }
    e2e = _by(results["end_to_end"], "mode")
    out["end to end: data URI time / FileOutput time"] = {
        f"{size // MiB}": e2e[("data-uri", size)]["median_seconds"] / e2e[("file", size)]["median_seconds"]
        for size in _sizes(results["end_to_end"])
    }
    return out


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the issue, the measured value and whether it is met."""
    r = results["ratios"]
    sizes = [s // MiB for s in _sizes(results["serving"])]
    big = [s for s in sizes if s >= 16] or sizes[-1:]
    largest = max(_sizes(results["serving"]))
    serving = _by(results["serving"], "variant")
    found: list[dict[str, Any]] = []

    def add(name: str, measured: str, met: bool) -> None:
        found.append({"target": name, "measured": measured, "met": met})

    for label, goal in (("ours-store / send_file", 0.9), ("ours-path / send_file", 0.9)):
        values = {s: r[label][str(s)] for s in big}
        add(
            f"serving {label} >= {goal} at {', '.join(f'{s} MiB' for s in big)}",
            ", ".join(f"{v:.2f}x at {s} MiB" for s, v in values.items()),
            all(v >= goal for v in values.values()),
        )
    values = {s: r["ours-store / dfc-plain"][str(s)] for s in sizes}
    add(
        "serving in-memory values >= 1.5x dash-file-cache CachePlain",
        ", ".join(f"{v:.2f}x at {s} MiB" for s, v in values.items()),
        all(v >= 1.5 for v in values.values()),
    )
    growth = {v: serving[(v, largest)]["max_memory_growth"] for v in OURS}
    add(
        f"memory growth while serving {largest // MiB} MiB <= 32 MiB",
        ", ".join(f"{v} {g / MiB:.1f} MiB" for v, g in growth.items()),
        all(g <= 32 * MiB for g in growth.values()),
    )
    speedup = r["end to end: data URI time / FileOutput time"]
    add(
        "end to end: FileOutput faster than a data URI at >= 1 MiB",
        ", ".join(f"{v:.2f}x at {s} MiB" for s, v in speedup.items()),
        all(v > 1 for v in speedup.values()),
    )
    if "16" in speedup:
        add("end to end: FileOutput >= 3x faster at 16 MiB", f"{speedup['16']:.2f}x", speedup["16"] >= 3)
    for row in results["transform_overhead"]:
        if row["backend"] == "SimpleCache":
            add(
                "transform overhead <= 1.3x a plain callback (10 KiB file, SimpleCache)",
                f"{row['ratio']:.2f}x",
                row["ratio"] <= 1.3,
            )
    return found


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']:.0f} GiB, Linux {m['kernel']}, "
        f"Python {m['python']}; "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items())
        + f". Run {results['started']} ({results['config']['mode']}, {results['elapsed_seconds']:.0f} s).",
        "",
    ]
    sizes = _sizes(results["serving"])
    head = " | ".join(f"{s // MiB} MiB" for s in sizes)
    rule = "|".join("---:" for _ in sizes)
    serving = _by(results["serving"], "variant")
    variants = list(dict.fromkeys(r["variant"] for r in results["serving"]))
    lines += [
        "**1. Serving a registered file** (gunicorn, 1 gthread worker; client: http.client in another "
        "process; MiB/s, median)",
        "",
        f"| variant | value | {head} |",
        f"|---|---|{rule}|",
    ]
    for v in variants:
        cells = " | ".join(f"{serving[(v, s)]['mib_per_s']:.0f}" for s in sizes)
        lines.append(f"| {v} | {serving[(v, sizes[0])]['value']} | {cells} |")
    lines += [
        "",
        "**2. Server memory and CPU while serving**: the worker's peak RSS growth (MiB, the most of three "
        "runs that start from a trimmed heap) / its CPU time per request (ms, median of the timed runs)",
        "",
        f"| variant | {head} |",
        f"|---|{rule}|",
    ]
    for v in variants:
        cells = " | ".join(
            f"{serving[(v, s)]['max_memory_growth'] / MiB:.1f} / "
            f"{serving[(v, s)]['median_server_cpu_seconds'] * 1e3:.1f}"
            for s in sizes
        )
        lines.append(f"| {v} | {cells} |")
    lines += ["", f"| ratio | {head} |", f"|---|{rule}|"]
    for label, _, _ in SERVING_RATIOS:
        cells = " | ".join(f"{results['ratios'][label][str(s // MiB)]:.2f}" for s in sizes)
        lines.append(f"| {label} | {cells} |")

    e2e = _by(results["end_to_end"], "mode")
    lines += [
        "",
        "**3. End to end, callback to last byte** (FileOutput: POST + GET; data URI: POST only; median)",
        "",
        "| size | FileOutput | data URI | speed-up | wire: FileOutput | wire: data URI "
        "| server growth: FileOutput | server growth: data URI |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in _sizes(results["end_to_end"]):
        f, d = e2e[("file", s)], e2e[("data-uri", s)]
        lines.append(
            f"| {_mib(s)} MiB | {f['median_seconds'] * 1e3:.1f} ms | {d['median_seconds'] * 1e3:.1f} ms "
            f"| {d['median_seconds'] / f['median_seconds']:.1f}x | {f['wire_bytes'] / MiB:.2f} MiB "
            f"| {d['wire_bytes'] / MiB:.2f} MiB | {f['max_memory_growth'] / MiB:.1f} MiB "
            f"| {d['max_memory_growth'] / MiB:.1f} MiB |"
        )

    lines += [
        "",
        "**4. Transform overhead per callback** (10 KiB file through the transform vs. the same callback "
        "returning a precomputed URL; Flask test client; median per callback)",
        "",
        "| backend | callbacks | FileOutput | plain Output | ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in results["transform_overhead"]:
        lines.append(
            f"| {row['backend']} | {row['callbacks']} | {row['file_seconds_per_callback'] * 1e3:.3f} ms "
            f"| {row['plain_seconds_per_callback'] * 1e3:.3f} ms | {row['ratio']:.2f}x |"
        )

    reg = results["registration"]
    rsizes = _sizes(reg)
    lines += [
        "",
        "**5. register()** (MiB/s, median; a path is copied into shared backends and kept by reference "
        "in host-local ones)",
        "",
        f"| backend | value | stored | {' | '.join(f'{s // MiB} MiB' for s in rsizes)} |",
        f"|---|---|---|{'|'.join('---:' for _ in rsizes)}|",
    ]
    by_key = {(r["backend"], r["value"], r["size"]): r for r in reg}
    for backend, value in dict.fromkeys((r["backend"], r["value"]) for r in reg):
        stored = by_key[(backend, value, rsizes[0])]["stored"]
        cells = " | ".join(f"{by_key[(backend, value, s)]['mib_per_s']:.0f}" for s in rsizes)
        lines.append(f"| {backend} | {value} | {stored} | {cells} |")

    lines += ["", "**Targets**", ""]
    for t in results["targets"]:
        lines.append(f"- {'met' if t['met'] else 'NOT met'}: {t['target']} ({t['measured']})")
    return "\n".join(lines) + "\n"
