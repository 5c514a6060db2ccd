"""Train the models shipped in `experiments/models/` with the `jaxcrn train` CLI.

Usage:
    python experiments/train_models.py [DATA_DIR] [--only NAME ...] [--force]

DATA_DIR (default: $JAXCRN_DATA, else ../shared/datasets) must contain `mnist/`
with the four MNIST IDX files. Each model is trained by running
`python -m jaxcrn train ...` with the dataset's preset (see `jaxcrn.preset`); the
command, its output (accuracies) and its wall time are printed. Run it on an idle
machine: on 2 CPU cores iris takes seconds, virus about ten seconds, and each MNIST-14
model several minutes.
"""

import argparse
import os
import shlex
import subprocess
import sys
import time


HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = {
    "iris": ["iris"],
    "virus": ["virus"],
    "virus_ternary": ["virus", "--quant", "ternary"],
    "mnist14": ["mnist14"],
    "mnist14_ternary": ["mnist14", "--quant", "ternary"],
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default=None)
    parser.add_argument("--only", nargs="+", choices=sorted(MODELS))
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    data = args.data or os.environ.get("JAXCRN_DATA")
    if data is None:
        data = os.path.join(HERE, "..", "..", "shared", "datasets")
    out_dir = os.path.join(HERE, "models")
    os.makedirs(out_dir, exist_ok=True)
    status = 0
    for name in args.only or MODELS:
        out = os.path.join(out_dir, f"{name}.npz")
        cmd = [sys.executable, "-m", "jaxcrn", "train", *MODELS[name], "-o", out]
        if name.startswith("mnist14"):
            cmd += ["--data", data]
        if args.force:
            cmd.append("--force")
        print("$", shlex.join(cmd), flush=True)
        start = time.perf_counter()
        rc = subprocess.call(cmd)
        print(f"[{name}: exit {rc}, wall {time.perf_counter() - start:.1f} s]\n")
        status = status or rc
    return status


if __name__ == "__main__":
    raise SystemExit(main())
