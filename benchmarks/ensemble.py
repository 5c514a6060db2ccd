"""Rate ensembles against input batches of the same size, one JSON line per case.

For each compiled network (IRIS, virus; the reduced CRN by default), with N
samples (the test inputs repeated to N):

- `inputs`: N input vectors at the network's rates, to t1;
- `inputs_long`: the same to t1 / LOW, the time the slowest rate set needs;
- `rates_same`: the inputs of `inputs_long` with N copies of the network's own
  rates passed as per-sample `rates` (the same ODEs: what carrying a rate vector
  per lane costs);
- `rates`: N random rate sets, every rate log-uniform in [LOW, HIGH] (sample i
  with input i mod the test set), in one `simulate_batch` call, to t1 / LOW
  (other ODEs: slower and stiffer rate sets take more steps).

Every case is checked first: the argmax of every sample equals the network's
(rate independence). Each record has the time per sample (the best of the
`--repeats` timed calls after a first call that compiles) and `vs_inputs` /
`vs_inputs_long`, the ratio of the case's time per sample to those of the input
batches. A general CRN (`--crn-file`, a name in benchmarks/crns/ or a path) adds
`inputs` (N inputs drawn by the file's `#@ sample` laws, at its rates, to its `#@
t1`) and `rates` (the same inputs, every rate of the file times a log-uniform
factor in [1/F, F], `--factor`).

    python benchmarks/ensemble.py [--models iris,virus] [--crn reduced] [--n 10000]
        [--t1 50] [--solver auto] [--repeats 3] [--crn-file FILE --factor 10]
        [--out FILE]
"""

import argparse
import os
import platform
import sys
import time

import jax


jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

import jaxcrn  # noqa: E402
from jaxcrn import scan  # noqa: E402


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _jsonl import emit  # noqa: E402
from peers import general_inputs, load_general  # noqa: E402


HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(fn, repeats):
    t = time.perf_counter()
    res = fn()
    first = time.perf_counter() - t
    best = first
    for _ in range(repeats):
        t = time.perf_counter()
        res = fn()
        best = min(best, time.perf_counter() - t)
    return res, first, best


def record(base, case, res, first, best, n, plan, t1, **extra):
    steps = np.asarray(res.num_steps)
    return {
        **base,
        "case": case,
        "batch": n,
        "t1": t1,
        "stepper": plan.stepper,
        "exact_inputs": plan.exact_inputs,
        "state_rows": plan.n_state,
        "lanes": plan.lanes,
        "workers": plan.workers,
        "chunk_size": plan.chunk_size,
        "first_call_s": round(first, 3),
        "wall_s": round(best, 3),
        "us_per_sample": round(best / n * 1e6, 2),
        "samples_per_s": round(n / best, 1),
        "steps_median": float(np.median(steps)),
        "steps_mean": round(float(steps.mean()), 1),
        "ok": int((np.asarray(res.status) == 0).sum()),
        **extra,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="iris,virus")
    ap.add_argument("--crn", choices=("reduced", "full"), default="reduced")
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--t1", type=float, default=50.0)
    ap.add_argument("--low", type=float, default=0.1)
    ap.add_argument("--high", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--solver", default="auto", choices=("auto", "tsit5", "rodas5p"))
    ap.add_argument("--rtol", type=float, default=1e-6)
    ap.add_argument("--atol", type=float, default=1e-9)
    ap.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="timed calls after the first (the best counts; with 1, the ratios of "
        "one run moved by up to 1.5x between runs on a shared 2-core machine)",
    )
    ap.add_argument("--crn-file", help="also a general CRN (corpus name or .crn)")
    ap.add_argument("--factor", type=float, default=10.0)
    ap.add_argument("--general-t1", type=float, help="default: the file's #@ t1")
    ap.add_argument("--out", help="append the records to this file")
    args = ap.parse_args()
    out = open(args.out, "a") if args.out else None
    solver = None if args.solver == "auto" else args.solver
    kw = dict(rtol=args.rtol, atol=args.atol, saveat=None, solver=solver)
    base = {
        "benchmark": "ensemble",
        "solver": args.solver,
        "rtol": args.rtol,
        "atol": args.atol,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_average": os.getloadavg()[0],
        "device": jax.devices()[0].device_kind,
        "jax": jax.__version__,
        "repeats": args.repeats,
    }
    for name in [m for m in args.models.split(",") if m]:
        model = jaxcrn.load_model(
            os.path.join(HERE, "experiments", "models", f"{name}.npz")
        )
        crn = jaxcrn.nn_to_crn(model)
        if args.crn == "reduced":
            crn = jaxcrn.reduce_crn(crn)
        net = jaxcrn.compile_crn(crn)
        test = jaxcrn.datasets.load(name).test.x
        x = test[np.arange(args.n) % len(test)]
        nn = jaxcrn.forward(model, x)
        rates = scan.log_uniform(net, args.n, args.low, args.high, seed=args.seed)
        t_long = args.t1 / args.low
        same = np.repeat(np.asarray(net.rates)[None, :], args.n, axis=0)
        cases = [
            ("inputs", args.t1, None),
            ("inputs_long", t_long, None),
            ("rates_same", t_long, same),
            ("rates", t_long, rates),
        ]
        m = {
            **base,
            "model": name,
            "crn_variant": args.crn,
            "species": net.n_species,
            "reactions": net.n_reactions,
            "rates_low": args.low,
            "rates_high": args.high,
        }
        recs = {}
        for case, t1, r in cases:

            def call(t1=t1, r=r):
                return jaxcrn.simulate_batch(net, x, t1, rates=r, **kw)

            res, first, best = timed(call, args.repeats)
            out_f = np.asarray(res.outputs_final)
            agree = int((out_f.argmax(1) == nn.argmax(1)).sum())
            plan = jaxcrn.plan_batch(net, args.n, rates=r, solver=solver)
            rec = record(
                m,
                case,
                res,
                first,
                best,
                args.n,
                plan,
                t1,
                agree=agree,
                max_abs_error=float(np.nanmax(np.abs(out_f - nn))),
            )
            recs[case] = rec
            if case != "inputs":
                rec["vs_inputs"] = round(
                    rec["us_per_sample"] / recs["inputs"]["us_per_sample"], 3
                )
            if case.startswith("rates"):
                rec["vs_inputs_long"] = round(
                    rec["us_per_sample"] / recs["inputs_long"]["us_per_sample"], 3
                )
            emit(rec, out)
    if args.crn_file:
        g = load_general(args.crn_file, jaxcrn)
        net = jaxcrn.compile_crn(g["crn"])
        t1 = args.general_t1 or g["t1"] or args.t1
        x = general_inputs(g["samples"], args.n, args.seed, g["name"])
        x = x if x.shape[1] else None
        rates = scan.log_uniform(net, args.n, factor=args.factor, seed=args.seed)
        m = {
            **base,
            "model": g["name"],
            "species": net.n_species,
            "reactions": net.n_reactions,
            "factor": args.factor,
        }
        recs = {}
        same = np.repeat(np.asarray(net.rates)[None, :], args.n, axis=0)
        for case, r in (("inputs", None), ("rates_same", same), ("rates", rates)):

            def call(r=r):
                return jaxcrn.simulate_batch(net, x, t1, rates=r, **kw)

            res, first, best = timed(call, args.repeats)
            plan = jaxcrn.plan_batch(net, args.n, rates=r, solver=solver)
            rec = record(m, case, res, first, best, args.n, plan, t1)
            recs[case] = rec
            if case != "inputs":
                rec["vs_inputs"] = round(
                    rec["us_per_sample"] / recs["inputs"]["us_per_sample"], 3
                )
            emit(rec, out)
    if out is not None:
        out.close()


if __name__ == "__main__":
    main()
