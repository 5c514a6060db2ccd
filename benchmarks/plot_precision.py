"""Plot work-precision diagrams from `benchmarks/peers.py --rtols` records.

    python benchmarks/plot_precision.py results/precision_general.jsonl \
        --png results/figures/work_precision [--force]

One panel per network of one run (the last in the files, or `--run`) at several
tolerances: each tool's time per sample
against the largest scaled error it reached (log-log), one point per rtol, joined in
rtol order; a tool keeps its colour across panels. Points that failed their check
are left out. The numbers behind the diagram, jaxcrn against the peers at equal
error, are `peers.matched_accuracy` (the table `peers.py --table` writes). Needs
matplotlib (the `plot` extra).
"""

import argparse
import math
import sys

from _jsonl import read
from peers import TOOLS, matched_accuracy


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("jsonl", nargs="+")
    ap.add_argument("--png", required=True, help="file stem: writes STEM.png")
    ap.add_argument("--rtol", type=float, default=1e-6, help="the nominal rtol")
    ap.add_argument(
        "--run",
        help="the run to draw (its start time, a record's 'run'; default: "
        "the last run in the files)",
    )
    ap.add_argument("--force", action="store_true", help="overwrite the figure")
    args = ap.parse_args(argv)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from jaxcrn import plot
    except ImportError:
        raise SystemExit('needs matplotlib: pip install -e ".[plot]"') from None
    recs = read(args.jsonl, "peers")
    runs = list(dict.fromkeys(r.get("run") for r in recs))
    run = args.run or (runs[-1] if runs else None)
    if args.run and args.run not in runs:
        raise SystemExit(f"--run {args.run}: the runs in the files are {runs}")
    rows = matched_accuracy([r for r in recs if r.get("run") == run], args.rtol)
    if not rows:
        raise SystemExit(
            "no network run at several tolerances (peers.py --rtols) with a passing "
            "jaxcrn and peer at rtol " + f"{args.rtol:g} in " + ", ".join(args.jsonl)
        )
    colors = {tool: f"C{i}" for i, tool in enumerate(TOOLS)}
    cols = min(4, len(rows))
    nrows = math.ceil(len(rows) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.6 * cols, 3.1 * nrows))
    axes = list(getattr(axes, "flat", [axes]))
    for ax, row in zip(axes, rows, strict=False):
        for tool, pts in row["points"].items():
            if not pts:
                continue
            rtols, errs, secs = zip(*sorted(pts, reverse=True), strict=True)
            ax.plot(
                errs,
                [s * 1e6 for s in secs],
                "-o",
                ms=3.5,
                color=colors.get(tool, "k"),
                label=tool,
            )
            for r, e, s in zip(rtols, errs, secs, strict=True):
                if r == args.rtol:
                    ax.plot(e, s * 1e6, "s", ms=7, mfc="none", color=colors[tool])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ratio = row.get("at_peer_accuracy")
        ax.set_title(
            f"{row['model']} ({row['species']} sp.): {row['nominal_speedup']:.3g}x"
            + (f", {ratio:.3g}x matched" if ratio else ""),
            fontsize=9,
        )
        ax.grid(True, which="both", alpha=0.3)
        ax.tick_params(which="both", labelsize=7)
    for ax in axes[len(rows) :]:
        ax.set_visible(False)
    for ax in axes[: len(rows)]:
        if ax.get_subplotspec().is_last_row() or ax is axes[len(rows) - 1]:
            ax.set_xlabel("largest scaled error", fontsize=8)
        if ax.get_subplotspec().is_first_col():
            ax.set_ylabel("µs per sample", fontsize=8)
    tools = [t for t in TOOLS if any(row["points"].get(t) for row in rows)]
    handles = [
        plt.Line2D([], [], color=colors[t], marker="o", label=t) for t in tools
    ] + [
        plt.Line2D(
            [],
            [],
            ls="",
            marker="s",
            mfc="none",
            color="k",
            label=f"rtol {args.rtol:g}",
        )
    ]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
    fig.suptitle(
        "Work-precision, one point per rtol. Title: jaxcrn's speed-up at rtol "
        f"{args.rtol:g}, and at the best peer's error there",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    for path in plot.save_figure(fig, args.png, ("png",), overwrite=args.force):
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
