"""PNG charts from bench/results/latest.json (matplotlib, no display)."""

from __future__ import annotations

from pathlib import Path


def draw(result: dict, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files: list[Path] = []
    service = [s for s in result.get("service", []) if "throughput" in s]
    ceiling = result.get("ceiling", {}).get("events_per_s")
    if service:
        fig, ax = plt.subplots(figsize=(6, 4))
        xs = [s["segments_live"] - 1 for s in service]
        ys = [s["throughput"]["events_per_s"] for s in service]
        ax.plot(xs, ys, "o-", label="segmentflow, 1 worker")
        if ceiling:
            ax.axhline(ceiling, color="grey", ls="--", label="bare aiokafka pipe (ceiling)")
        same = result.get("ceiling", {}).get("same_output_volume")
        if same:
            ax.axhline(same["events_per_s"], color="grey", ls=":",
                       label=f"pipe, {same['fanout']} outputs per input")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("live segments")
        ax.set_ylabel("events/s")
        ax.set_title("Sustained throughput (shared 2-core machine)")
        ax.legend()
        fig.tight_layout()
        files.append(out / "throughput.png")
        fig.savefig(files[-1], dpi=100)
        plt.close(fig)
    bars = {}
    for s in service:
        if "latency" in s and s["latency"]["latency_ms"]["p50"] is not None:
            bars["produce->change"] = s["latency"]["latency_ms"]
    late = result.get("lateness", {}).get("lateness_observed_ms")
    if late and late.get("p50") is not None:
        bars["time-driven lateness"] = late
    if bars:
        fig, ax = plt.subplots(figsize=(6, 4))
        width = 0.25
        for i, key in enumerate(("p50", "p99", "max")):
            ax.bar([j + i * width for j in range(len(bars))], [b[key] for b in bars.values()],
                   width, label=key)
        ax.set_xticks([j + width for j in range(len(bars))], list(bars))
        ax.set_ylabel("ms")
        ax.set_title("Latency (half load) and lateness")
        ax.legend()
        fig.tight_layout()
        files.append(out / "latency.png")
        fig.savefig(files[-1], dpi=100)
        plt.close(fig)
    batch = result.get("batch", [])
    p50 = result.get("reflected_ms_p50")
    if batch and p50:
        fig, ax = plt.subplots(figsize=(6, 4))
        labels = ["segmentflow\n(one event, p50)"] + [
            f"DuckDB full recompute\n{b['contacts']:,} contacts" for b in batch]
        values = [p50 / 1000] + [b["recompute_seconds"] for b in batch]
        ax.bar(labels, values, color=["C0"] + ["C1"] * len(batch))
        ax.set_yscale("log")
        ax.set_ylabel("seconds until reflected (log)")
        ax.set_title("One event reflected: streaming vs batch")
        fig.tight_layout()
        files.append(out / "reflected.png")
        fig.savefig(files[-1], dpi=100)
        plt.close(fig)
    return files
