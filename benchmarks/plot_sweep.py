"""Plot throughput against batch size from `benchmarks/batch_sweep.py` records.

    python benchmarks/plot_sweep.py results/sweep_cpu.jsonl \
        results/gpu/sweep_h100.jsonl \
        --png results/figures/throughput_vs_batch.png [--force]

One panel per model, one line per (CRN, device); only float64 records of the trained
model at t1 = 50 that passed their check (status "ok") are drawn, and for repeated
batch sizes the fastest setting is kept. Needs matplotlib (the `plot` extra).
"""

import argparse
import json
import os
import sys
from collections import defaultdict


def load(paths):
    recs = []
    for path in paths:
        with open(path) as f:
            for i, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    recs.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise SystemExit(f"{path}:{i}: not a JSON line ({e.msg})") from None
    return [r for r in recs if r.get("benchmark") == "batch_sweep"]


def series(recs):
    """{model: {label: {batch: samples_per_s}}}, keeping the best per batch."""
    out = defaultdict(lambda: defaultdict(dict))
    for r in recs:
        if r.get("status") != "ok" or r.get("weights", "trained") != "trained":
            continue
        if r.get("t1", 50.0) != 50.0 or r["dtype"] != "float64":
            continue
        dev = (
            "CPU" if r["platform"] == "cpu" else r["device_kind"].replace("NVIDIA ", "")
        )
        label = f"{r['crn']}, {dev}"
        cur = out[r["model"]][label].get(r["batch"], 0.0)
        out[r["model"]][label][r["batch"]] = max(cur, r["samples_per_s"])
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("jsonl", nargs="+")
    ap.add_argument("--png", required=True)
    ap.add_argument("--force", action="store_true", help="overwrite --png")
    args = ap.parse_args(argv)
    if os.path.exists(args.png) and not args.force:
        raise SystemExit(f"{args.png} exists; pass --force to overwrite it.")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit('needs matplotlib: pip install -e ".[plot]"') from None
    data = series(load(args.jsonl))
    if not data:
        raise SystemExit("no passing batch_sweep records in " + ", ".join(args.jsonl))
    models = [m for m in ("iris", "virus", "mnist14") if m in data]
    fig, axes = plt.subplots(1, len(models), figsize=(4.6 * len(models), 3.8))
    axes = [axes] if len(models) == 1 else list(axes)
    for ax, model in zip(axes, models, strict=True):
        for label in sorted(data[model]):
            pts = sorted(data[model][label].items())
            style = "-" if "CPU" not in label else "--"
            ax.plot(
                [b for b, _ in pts],
                [s for _, s in pts],
                style,
                marker="o",
                label=label,
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("batch size")
        ax.set_title(model)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("samples / s (simulate_batch, t1 = 50)")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(args.png)), exist_ok=True)
    fig.savefig(args.png, dpi=130)
    print(f"wrote {args.png}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
