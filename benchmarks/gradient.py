"""What does a gradient through a batch cost? One gradient against one forward solve
of the same batch, through `jaxcrn.simulate_differentiable`, for each adjoint.

Cases: the trained IRIS (reduced CRN, 150 inputs) and virus (full CRN, 104 inputs)
networks, with a loss on the outputs at four times up to t1 = 10, differentiated
with respect to every rate constant (shared by the batch) and every input; and
Robertson's stiff chemistry for 64 initial conditions to t1 = 40, with respect to
its 3 rate constants and the initial concentrations. Forward mode (one tangent per
parameter) is run with respect to the rate constants only.

Correctness first: on 8 samples, at rtol 1e-10, each adjoint's gradient is compared
with central differences along two random directions (relative error reported as
`fd_rel_err`, must be < 1e-4 for the checkpointed and forward adjoints;
recorded as `accurate` for backsolve, which can fail on dissipative chemistry); at
the benchmark's tolerances (rtol 1e-6, atol 1e-9) the batch gradient is compared
with the tight one (`rel_err_vs_tight`).
Then each function is called once to compile and timed (minimum over repeats);
compile and run times are reported apart, and `grad_over_forward` is the ratio of
the run times. `forward` is jitted `simulate_differentiable` returning the loss;
`simulate_batch_s` is the fast (not differentiable) batch engine on the same batch,
for scale. One JSON line per case.

    python benchmarks/gradient.py [--repeats 3] [--cases iris,virus,robertson]
        [--adjoints checkpoint,backsolve,forward] [--out results/gradient.jsonl]
"""

import argparse
import os
import platform
import time

import jax


jax.config.update("jax_enable_x64", True)

import diffrax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _jsonl import emit  # noqa: E402

import jaxcrn  # noqa: E402


HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROBERTSON = """
A -> B      [k=0.04]
2 B -> B + C  [k=3e7]
B + C -> A + C  [k=1e4]
init A = 1
"""


def _case(name):
    """(network, inputs or None, y0 or None, t1, save times, solver, wrt)."""
    if name in ("iris", "virus"):
        model = jaxcrn.load_model(
            os.path.join(HERE, "experiments", "models", f"{name}.npz")
        )
        crn = jaxcrn.nn_to_crn(model)
        if name == "iris":
            crn = jaxcrn.reduce_crn(crn)
        data = jaxcrn.datasets.load(name)
        net = jaxcrn.compile_crn(crn)
        x = jnp.asarray(data.test.x)
        t1 = 10.0
        return (
            net,
            x,
            None,
            t1,
            jnp.array([1.0, 2.0, 5.0, 10.0]),
            diffrax.Tsit5(),
            "rates,inputs",
        )
    if name == "robertson":
        net = jaxcrn.compile_crn(jaxcrn.parse_crn(ROBERTSON))
        rng = np.random.default_rng(0)
        y0 = np.zeros((64, 3))
        y0[:, 0] = rng.uniform(0.5, 1.5, 64)
        y0[:, 2] = rng.uniform(0.0, 0.1, 64)
        return (
            net,
            None,
            jnp.asarray(y0),
            40.0,
            jnp.array([0.4, 4.0, 40.0]),
            None,
            "rates,y0",
        )
    raise ValueError(f"unknown case {name!r}")


def _loss_fn(net, x, y0, t1, ts, solver, adjoint, rtol, atol):
    t1 = jnp.asarray(t1)
    weights = jnp.arange(1.0, ts.shape[0] + 1.0)

    def loss(rates, x, y0):
        res = jaxcrn.simulate_differentiable(
            net,
            x,
            t1,
            y0=y0,
            rates=rates,
            saveat=ts,
            solver=solver,
            adjoint=adjoint,
            rtol=rtol,
            atol=atol,
            save_species=False,
        )
        if net.n_outputs:
            vals = res.outputs  # (batch, times, outputs)
        else:
            vals = res.ys  # (batch, times, species): Robertson observes every species
        return jnp.sum(jnp.tanh(vals) * weights[None, :, None])

    return loss


def _grad_fn(loss, adjoint, wrt):
    argnums = tuple({"rates": 0, "inputs": 1, "y0": 2}[w] for w in wrt.split(","))
    if adjoint == "forward":
        return jax.jit(jax.jacfwd(loss, argnums=argnums))
    return jax.jit(jax.grad(loss, argnums=argnums))


def _flat(g):
    return np.concatenate([np.ravel(a) for a in g])


def _timed(f, *args, repeats):
    t = time.perf_counter()
    out = jax.block_until_ready(f(*args))
    first = time.perf_counter() - t
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(f(*args))
        runs.append(time.perf_counter() - t)
    run = min(runs)
    return out, max(first - run, 0.0), run


def _check(net, x, y0, t1, ts, solver, adjoint, wrt, rng):
    """Gradient vs central differences on 8 samples at rtol 1e-10."""
    xs = None if x is None else x[:8]
    ys = None if y0 is None else y0[:8]
    loss = _loss_fn(net, xs, ys, t1, ts, solver, adjoint, 1e-10, 1e-12)
    if adjoint != "checkpoint":  # the forward pass is the same
        loss_f = _loss_fn(net, xs, ys, t1, ts, solver, "checkpoint", 1e-10, 1e-12)
    else:
        loss_f = loss
    f = jax.jit(loss_f)
    grad = _grad_fn(loss, adjoint, wrt)
    args = [net.rates, xs, ys]
    g = grad(*args)
    errs = []
    for k, w in enumerate(wrt.split(",")):
        i = {"rates": 0, "inputs": 1, "y0": 2}[w]
        for _ in range(2):
            v = rng.uniform(-1.0, 1.0, np.shape(args[i]))
            if w in ("rates", "y0"):  # relative steps keep them positive
                v = v * np.asarray(args[i])
            eps = 1e-5
            plus, minus = list(args), list(args)
            plus[i] = args[i] + eps * v
            minus[i] = args[i] - eps * v
            fd = (float(f(*plus)) - float(f(*minus))) / (2 * eps)
            an = float(np.sum(np.asarray(g[k]) * v))
            errs.append(abs(an - fd) / max(abs(fd), 1e-12))
    return max(errs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cases", default="iris,virus,robertson")
    ap.add_argument("--adjoints", default="checkpoint,backsolve,forward")
    ap.add_argument(
        "--skip",
        default="",
        help="CASE/ADJOINT pairs to leave out, e.g. virus/backsolve (its check at "
        "rtol 1e-10 takes over 40 minutes on 2 cores)",
    )
    ap.add_argument("--out")
    args = ap.parse_args()
    out = open(args.out, "a") if args.out else None
    rng = np.random.default_rng(0)
    for case in args.cases.split(","):
        net, x, y0, t1, ts, solver, wrt_all = _case(case)
        batch = (x if x is not None else y0).shape[0]
        loss = _loss_fn(net, x, y0, t1, ts, solver, "checkpoint", 1e-6, 1e-9)
        fwd = jax.jit(loss)
        value, fwd_compile, fwd_run = _timed(
            fwd, net.rates, x, y0, repeats=args.repeats
        )
        tight = _grad_fn(
            _loss_fn(net, x, y0, t1, ts, solver, "checkpoint", 1e-10, 1e-12),
            "checkpoint",
            wrt_all,
        )(net.rates, x, y0)
        res = jaxcrn.simulate_differentiable(
            net,
            x,
            jnp.asarray(t1),
            y0=y0,
            saveat=ts,
            solver=solver,
            rtol=1e-6,
            atol=1e-9,
        )
        steps = np.asarray(res.num_steps)
        ok = int(np.sum(np.asarray(res.status) == 0))
        sb_s = None
        if x is not None:
            kw = dict(rtol=1e-6, atol=1e-9, saveat=np.asarray(ts), progress=False)
            jaxcrn.simulate_batch(net, np.asarray(x), t1, **kw)
            sb = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                jaxcrn.simulate_batch(net, np.asarray(x), t1, **kw)
                sb.append(time.perf_counter() - t)
            sb_s = min(sb)
        for adjoint in args.adjoints.split(","):
            if f"{case}/{adjoint}" in args.skip.split(","):
                continue
            # forward mode costs one tangent per parameter: rate constants only
            wrt = "rates" if adjoint == "forward" else wrt_all
            ref = tight[:1] if adjoint == "forward" else tight
            fd_err = _check(net, x, y0, t1, ts, solver, adjoint, wrt, rng)
            # backsolve reconstructs the state backwards in time, which amplifies
            # errors in dissipative chemistry: recorded, not asserted
            accurate = fd_err < 1e-4
            assert accurate or adjoint == "backsolve", (case, adjoint, fd_err)
            grad = _grad_fn(
                _loss_fn(net, x, y0, t1, ts, solver, adjoint, 1e-6, 1e-9), adjoint, wrt
            )
            g, g_compile, g_run = _timed(grad, net.rates, x, y0, repeats=args.repeats)
            err = np.linalg.norm(_flat(g) - _flat(ref)) / np.linalg.norm(_flat(ref))
            emit(
                dict(
                    bench="gradient",
                    case=case,
                    species=net.n_species,
                    reactions=net.n_reactions,
                    batch=int(batch),
                    t1=t1,
                    solver=type(solver).__name__ if solver is not None else "Rodas5P",
                    adjoint=adjoint,
                    wrt=wrt,
                    n_params=int(sum(np.size(a) for a in g)),
                    ok=ok,
                    steps_median=float(np.median(steps)),
                    loss=float(value),
                    fd_rel_err=fd_err,
                    accurate=bool(accurate),
                    rel_err_vs_tight=float(err),
                    forward_compile_s=fwd_compile,
                    forward_s=fwd_run,
                    grad_compile_s=g_compile,
                    grad_s=g_run,
                    grad_over_forward=g_run / fwd_run,
                    simulate_batch_s=sb_s,
                    backend=jax.default_backend(),
                    machine=platform.processor() or platform.machine(),
                    cores=os.cpu_count(),
                    load_average=os.getloadavg()[0],
                ),
                out,
            )


if __name__ == "__main__":
    main()
