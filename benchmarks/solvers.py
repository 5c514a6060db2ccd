"""Which stepper should be the default? In the one batch engine of `simulate_batch`:
its own Tsit5 and Rodas5P (the linear solves by the network's structure), `auto`
(Tsit5 with stiffness detection, each stiff sample continued by Rodas5P, below 256
state rows; Rodas5P above), and diffrax's Dopri5 and Kvaerno5 (an ESDIRK with a
Newton iteration and a dense Jacobian) through the diffrax adapter, on the
project's networks: the trained IRIS 4-8-3 and virus 10-32-4 models and the
trained MNIST-14 196-512-512-10 model, full and reduced CRNs.

Every run goes through `simulate_batch` (t1 = 50, rtol 1e-6, atol 1e-9), is checked
first (argmax equal to the network's forward pass on every sample), and prints one
JSON line: solver, model, crn, samples, compile_s, run_s, ms_per_sample,
steps_median, rejected_median.

    python benchmarks/solvers.py [--mnist-samples 8] [--models iris,virus,mnist14]
        [--solvers auto,tsit5,rodas5p,dopri5,kvaerno5] [--out results/solvers.jsonl]
"""

import argparse
import os
import platform
import time

import jax


jax.config.update("jax_enable_x64", True)

import diffrax  # noqa: E402
import numpy as np  # noqa: E402
from _jsonl import emit  # noqa: E402

import jaxcrn  # noqa: E402


HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(net, x, solver, max_steps):
    kw = dict(
        solver=solver,
        rtol=1e-6,
        atol=1e-9,
        saveat=None,
        max_steps=max_steps,
    )
    t = time.perf_counter()
    res = jaxcrn.simulate_batch(net, x, 50.0, **kw)
    first = time.perf_counter() - t
    if first > 60.0:  # a slow solver: compile time is negligible, do not repeat
        return res, None, first
    t = time.perf_counter()
    res = jaxcrn.simulate_batch(net, x, 50.0, **kw)
    second = time.perf_counter() - t
    return res, max(first - second, 0.0), second


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mnist-samples", type=int, default=8)
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--models", default="iris,virus,mnist14")
    ap.add_argument("--solvers", default="auto,tsit5,rodas5p,dopri5,kvaerno5")
    ap.add_argument("--out")
    args = ap.parse_args()
    models = args.models.split(",")
    out = open(args.out, "a") if args.out else None
    every = {
        "auto": None,
        "tsit5": "tsit5",
        "rodas5p": "rodas5p",
        "dopri5": diffrax.Dopri5(),
        "kvaerno5": diffrax.Kvaerno5(),
    }
    runs = [(name, every[name]) for name in args.solvers.split(",")]
    cases = [(m, None) for m in ("iris", "virus") if m in models]
    data_dir = os.environ.get(
        "JAXCRN_DATA", os.path.join(HERE, "..", "shared", "datasets")
    )
    if "mnist14" in models and os.path.isdir(data_dir) and args.mnist_samples > 0:
        cases.append(("mnist14", data_dir))
    for name, path in cases:
        model = jaxcrn.load_model(
            os.path.join(HERE, "experiments", "models", f"{name}.npz")
        )
        ds = jaxcrn.datasets.load(name, path)
        n = args.mnist_samples if name == "mnist14" else args.samples
        x = (
            np.resize(ds.test.x, (n, ds.n_features))
            if name != "mnist14"
            else (ds.test.x[:n])
        )
        ref = jaxcrn.forward(model, x).argmax(1)
        full = jaxcrn.nn_to_crn(model)
        for crn_name, crn in (("full", full), ("reduced", jaxcrn.reduce_crn(full))):
            net = jaxcrn.compile_crn(crn)
            for sname, solver in runs:
                if name == "mnist14" and sname == "kvaerno5":
                    rec = {
                        "solver": sname,
                        "model": name,
                        "crn": crn_name,
                        "skipped": "dense Jacobian: "
                        f"{net.n_species}x{net.n_species} per sample and step",
                    }
                    emit(rec, out)
                    continue
                max_steps = 200_000 if sname in ("tsit5", "dopri5") else 20_000
                res, compile_s, run_s = run(net, x, solver, max_steps)
                ok = bool(np.all(res.status == 0))
                agree = int((res.outputs_final.argmax(1) == ref).sum())
                rec = {
                    "benchmark": "solvers",
                    "solver": sname,
                    "plan": str(jaxcrn.plan_batch(net, n, solver=solver).stepper),
                    "model": name,
                    "crn": crn_name,
                    "species": net.n_species,
                    "samples": n,
                    "ok": ok,
                    "agree": agree,
                    # None: one call only (> 60 s), run_s includes compilation
                    "compile_s": None if compile_s is None else round(compile_s, 3),
                    "run_s": round(run_s, 4),
                    "ms_per_sample": round(run_s / n * 1e3, 4),
                    "steps_median": float(np.median(res.num_steps)),
                    "rejected_median": float(np.median(res.num_rejected)),
                    "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                }
                if not ok or agree != n:
                    rec["error"] = "wrong answer or failed samples"
                emit(rec, out)


if __name__ == "__main__":
    main()
