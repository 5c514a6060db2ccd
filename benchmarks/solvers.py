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

Does reusing a factorisation over several steps beat Rodas5P (one per step) on
stiff general CRNs? `--crns` runs `.crn` files of `benchmarks/crns/` (their t1 and
input laws, as `peers.py`) with `ros34pw2`, a Rosenbrock-W method whose
factorisation serves several steps, beside `rodas5p`; the final states are
checked against Rodas5P at rtol 1e-10 (`peers.check_states`, the file's tol):

    python benchmarks/solvers.py --models none --crns egfr_net,mapk_huang_ferrell
        --solvers rodas5p,ros34pw2,bdf --samples 32 [--rtol 1e-6 --atol 1e-9]
        [--lanes 8]
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


def run(net, x, solver, max_steps, t1=50.0, **kw):
    kw = (
        dict(
            dict(rtol=1e-6, atol=1e-9), solver=solver, saveat=None, max_steps=max_steps
        )
        | kw
    )
    t = time.perf_counter()
    res = jaxcrn.simulate_batch(net, x, t1, **kw)
    first = time.perf_counter() - t
    if first > 60.0:  # a slow solver: compile time is negligible, do not repeat
        return res, None, first
    t = time.perf_counter()
    res = jaxcrn.simulate_batch(net, x, t1, **kw)
    second = time.perf_counter() - t
    return res, max(first - second, 0.0), second


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mnist-samples", type=int, default=8)
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--models", default="iris,virus,mnist14")
    ap.add_argument("--solvers", default="auto,tsit5,rodas5p,dopri5,kvaerno5")
    ap.add_argument("--crns", default="", help="general CRNs of benchmarks/crns/")
    ap.add_argument("--rtol", type=float, default=1e-6)
    ap.add_argument("--atol", type=float, default=1e-9)
    ap.add_argument("--lanes", type=int, help="lanes per worker (default: the plan's)")
    ap.add_argument("--out")
    args = ap.parse_args()
    models = args.models.split(",")
    out = open(args.out, "a") if args.out else None
    every = {
        "auto": None,
        "tsit5": "tsit5",
        "rodas5p": "rodas5p",
        "ros34pw2": "ros34pw2",
        "bdf": "bdf",
        "dopri5": diffrax.Dopri5(),
        "kvaerno5": diffrax.Kvaerno5(),
    }
    runs = [(name, every[name]) for name in args.solvers.split(",")]
    for name in filter(None, args.crns.split(",")):
        general(name, runs, args, out)
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


def general(name, runs, args, out) -> None:
    """One general CRN of `benchmarks/crns/`: each solver against Rodas5P at rtol
    1e-10 on the final states."""
    from peers import check_states, general_inputs, load_general

    head = load_general(name, jaxcrn)
    net = jaxcrn.compile_crn(head["crn"])
    x = general_inputs(head["samples"], args.samples, 0, head["name"])
    t1 = head["t1"] or 50.0
    keep = dict(keep_states=True, lanes=args.lanes)
    ref, _, _ = run(net, x, "rodas5p", 100_000, t1, rtol=1e-10, atol=1e-12, **keep)
    for sname, solver in runs:
        kw = dict(rtol=args.rtol, atol=args.atol) | keep
        res, compile_s, run_s = run(net, x, solver, 100_000, t1, **kw)
        check = check_states(res.y_final, ref.y_final, head["tol"] or 1e-3, 1e-4, 1e-12)
        plan = jaxcrn.plan_batch(net, args.samples, solver=solver, lanes=args.lanes)
        rec = {
            "benchmark": "solvers",
            "solver": sname,
            "plan": f"{plan.stepper}, {plan.linear_solve}, lanes {plan.lanes}"
            f" x {plan.workers}",
            "model": name,
            "species": net.n_species,
            "samples": args.samples,
            "rtol": args.rtol,
            "ok": bool(np.all(res.status == 0)) and bool(check["passed"]),
            "max_scaled_error": check["max_scaled_err"],
            "compile_s": None if compile_s is None else round(compile_s, 3),
            "run_s": round(run_s, 4),
            "ms_per_sample": round(run_s / args.samples * 1e3, 4),
            "steps_median": float(np.median(res.num_steps)),
            "rejected_median": float(np.median(res.num_rejected)),
            "ms_per_sample_step": round(
                run_s / float(np.sum(res.num_steps + res.num_rejected)) * 1e3, 5
            ),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        }
        emit(rec, out)


if __name__ == "__main__":
    main()
