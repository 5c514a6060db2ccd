"""Fitting rate constants: `jaxcrn.fit_rates` against what a user would do instead,
scipy `least_squares` with finite-difference Jacobians over libRoadRunner or scipy
`solve_ivp` simulations. Same data, same starting point, same parameterisation
(log rate constants), same stopping tolerances.

Problems (networks from benchmarks/crns/):

- `robertson` (3 species, 3 reactions): initial A in {0.5, 1, 1.5}, 20 log-spaced
  times from 1e-3 to 40, every species observed;
- `mapk` (mapk_huang_ferrell, a signalling cascade: 22 species, 30 reactions):
  input kinase E1 in {3e-6, 1e-5, 3e-5} uM, 20 times to 1000 s, the 8 kinase forms
  that are not complexes observed (the complexes are not);
- `random60` (60 species, 120 reactions, random reversible): 4 random monomer
  inputs, 15 log-spaced times from 0.01 to 100, every species observed.

Data: the true model (the file's rates) simulated by jaxcrn at rtol 1e-10 and
checked first against libRoadRunner and scipy at the truth (largest scaled
difference `truth_check`, must be < 1e-5), plus Gaussian noise of 1% of each
series' largest value (sigma known to every method). Start: every true rate times
a factor log-uniform in [1/3, 3] (seeded). Every free rate fitted.

Methods, all with ftol = xtol = gtol = 1e-8 and simulations at rtol 1e-8, atol
1e-12: `jaxcrn` (fit_rates' Levenberg-Marquardt with forward-mode Jacobians,
`jacobian="forward"`, Rodas5P; timed cold, compilation included, and warm: a second
call with the same shapes); `jaxcrn_batch` (the same with `jacobian="batch"`,
fit_rates' default: central differences, all perturbed rate sets in one
`simulate_batch` call); `jaxcrn_lbfgs` and `jaxcrn_adam` (fit_rates with an Optax
optimiser, to support the choice of default; warm); `roadrunner` and `scipy_bdf`
(scipy least_squares, method trf, jac '2-point' with diff_step 1e-4 ~ sqrt(rtol),
over libRoadRunner's CVODE and over solve_ivp BDF with the analytic sparse Jacobian
of benchmarks/peers.py; `--peer-max-seconds` caps a run, `--stop-at-target` ends
it once it reaches the target of the methods run before it). Per method: wall time,
final cost, the time at which the cost first came within 1e-3 (relative) of the best
final cost of all methods (`target_s`; None: never), and the error of the recovered
rates (median and max |k / k_true - 1|). One JSON line per problem and method.

    pip install -e ".[bench]"
    python benchmarks/fit.py [--problems robertson,mapk,random60]
        [--methods jaxcrn,jaxcrn_batch,jaxcrn_lbfgs,jaxcrn_adam,roadrunner,scipy_bdf]
        [--peer-max-seconds S] [--stop-at-target] [--out results/fit.jsonl]
"""

import argparse
import os
import platform
import sys
import time

import jax


jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from _jsonl import emit  # noqa: E402
from peers import MassAction, network_spec  # noqa: E402

import jaxcrn  # noqa: E402


HERE = os.path.dirname(os.path.abspath(__file__))
RTOL, ATOL = 1e-8, 1e-12
TOLS = dict(ftol=1e-8, xtol=1e-8, gtol=1e-8)
NOISE = 0.01
TARGET = 1e-3


def problem(name, seed):
    """(crn, experiments as (inputs, times, observed names)) for a problem."""
    rng = np.random.default_rng(seed)
    if name == "robertson":
        crn = jaxcrn.load_crn(os.path.join(HERE, "crns", "robertson.crn"))
        times = np.geomspace(1e-3, 40.0, 20)
        runs = [([a], times, list(crn.species)) for a in (0.5, 1.0, 1.5)]
    elif name == "mapk":
        crn = jaxcrn.load_crn(os.path.join(HERE, "crns", "mapk_huang_ferrell.crn"))
        times = np.linspace(50.0, 1000.0, 20)
        forms = ["KKK", "KKKs", "KK", "KKP", "KKPP", "K", "KP", "KPP"]
        runs = [([e], times, forms) for e in (3e-6, 1e-5, 3e-5)]
    elif name == "random60":
        crn = jaxcrn.load_crn(os.path.join(HERE, "crns", "random60.crn"))
        times = np.geomspace(0.01, 100.0, 15)
        runs = [(rng.uniform(0.5, 1.5, 5), times, list(crn.species)) for _ in range(4)]
    else:
        raise ValueError(f"unknown problem {name!r}")
    return crn, runs


def clean_data(crn, runs):
    """The true model at each run's times, jaxcrn at rtol 1e-10: (runs, times, obs)."""
    net = jaxcrn.compile_crn(crn)
    out = []
    for x, times, names in runs:
        res = jaxcrn.simulate_differentiable(
            net, jnp.asarray(x), jnp.asarray(times[-1]), saveat=jnp.asarray(times),
            rtol=1e-10, atol=1e-14,
        )  # fmt: skip
        assert int(res.status) == 0
        ys = np.asarray(res.ys)
        out.append(ys[:, [net.index(s) for s in names]])
    return out


class Recorder:
    """Wraps a residual function: wall time and best cost so far at each call."""

    def __init__(self, fun):
        self.fun = fun
        self.start = time.perf_counter()
        self.trace = []
        self.best = np.inf
        self.calls = 0

    def __call__(self, th):
        r = self.fun(th)
        self.calls += 1
        cost = 0.5 * float(r @ r)
        self.best = min(self.best, cost)
        self.trace.append((time.perf_counter() - self.start, self.best))
        return r


def roadrunner_residuals(crn, runs, data, sigmas):
    import roadrunner

    rr = roadrunner.RoadRunner(jaxcrn.to_sbml(crn))
    integ = rr.integrator
    integ.stiff = True
    integ.relative_tolerance = RTOL
    integ.absolute_tolerance = ATOL
    integ.maximum_num_steps = 1_000_000
    k_ids = [f"k{i}" for i in range(len(crn.reactions))]
    assert set(k_ids) <= set(rr.model.getGlobalParameterIds())
    inputs = [s.pos for s in crn.inputs]

    def simulate(rates):
        preds = []
        for (x, times, names), _ in zip(runs, data):
            rr.resetAll()
            for s, v in zip(inputs, x):
                rr[f"init([{s}])"] = float(v)
            rr.reset()  # this also restores the SBML's rate constants: set them after
            for k, v in zip(k_ids, rates):
                rr[k] = float(v)
            rr.timeCourseSelections = ["time"] + [f"[{s}]" for s in names]
            grid = np.concatenate([[0.0], times])
            res = np.asarray(rr.simulate(times=grid.tolist()))
            preds.append(res[1:, 1:])
        return preds

    return simulate


def scipy_residuals(crn, runs, data, sigmas):
    from scipy.integrate import solve_ivp

    spec = network_spec(crn)
    kin = MassAction(spec)
    index = {s: i for i, s in enumerate(spec["species"])}

    def simulate(rates):
        kin.rates = np.asarray(rates, np.float64)
        preds = []
        for x, times, names in runs:
            y0 = spec["init"].copy()
            np.add.at(y0, spec["in_pos"], np.asarray(x, np.float64))
            sol = solve_ivp(
                kin.rhs, (0.0, times[-1]), y0, method="BDF", t_eval=times,
                rtol=RTOL, atol=ATOL, jac=kin.jac,
            )  # fmt: skip
            if not sol.success:
                raise RuntimeError(sol.message)
            preds.append(sol.y[[index[s] for s in names]].T)
        return preds

    return simulate


class Reached(Exception):
    """The scipy route came within TARGET of the best cost so far (--stop-at-target)."""


def scipy_fit(simulate, data, sigmas, theta0, max_seconds, stop_at=None):
    from scipy.optimize import least_squares

    def residuals(th):
        if time.perf_counter() - rec.start > max_seconds:
            raise TimeoutError
        if stop_at is not None and rec.best <= stop_at:
            raise Reached
        try:
            preds = simulate(np.exp(th))
        except Exception:
            return np.full(sum(d.size for d in data), 1e10)
        return np.concatenate(
            [((p - d) / s).ravel() for p, d, s in zip(preds, data, sigmas)]
        )

    rec = Recorder(residuals)
    try:
        sol = least_squares(
            rec, theta0, jac="2-point", diff_step=1e-4, method="trf",
            max_nfev=100_000, **TOLS,
        )  # fmt: skip
        theta, message = sol.x, sol.message
        status = "ok"
    except TimeoutError:
        theta, message, status = None, f"stopped after {max_seconds} s", "timeout"
    except Reached:
        theta, message = None, f"stopped on reaching cost {stop_at:.8g}"
        status = "reached"
    return rec, theta, message, status


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--problems", default="robertson,mapk,random60")
    ap.add_argument(
        "--methods", default="jaxcrn,jaxcrn_lbfgs,jaxcrn_adam,roadrunner,scipy_bdf"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--peer-max-seconds", type=float, default=1800.0)
    ap.add_argument("--adam-iterations", type=int, default=2000)
    ap.add_argument(
        "--stop-at-target",
        action="store_true",
        help="stop a scipy route once it comes within 1e-3 of the best cost of the "
        "methods before it (its final cost is then not measured)",
    )
    ap.add_argument(
        "--compilation-cache",
        metavar="DIR",
        help="keep compiled programs in DIR (jaxcrn.use_compilation_cache): a second "
        "run's first call reads them back; records say whether DIR held entries",
    )
    ap.add_argument("--out")
    args = ap.parse_args()
    out = open(args.out, "a") if args.out else None
    cache_state = None
    if args.compilation_cache:
        held = os.path.isdir(args.compilation_cache) and any(
            n.endswith("-cache") for n in os.listdir(args.compilation_cache)
        )
        jaxcrn.use_compilation_cache(args.compilation_cache)
        cache_state = "entries from an earlier run" if held else "empty"
    methods = args.methods.split(",")
    for name in args.problems.split(","):
        crn, runs = problem(name, args.seed)
        rng = np.random.default_rng(args.seed + 1)
        clean = clean_data(crn, runs)
        truth = np.array([r.rate for r in crn.reactions])
        # correctness first: both peers reproduce the clean data at the truth
        checks = {}
        for peer, make in (
            ("roadrunner", roadrunner_residuals),
            ("scipy_bdf", scipy_residuals),
        ):
            if peer in methods:
                preds = make(crn, runs, clean, None)(truth)
                scale = [np.max(np.abs(c), axis=0) for c in clean]
                err = max(
                    float(np.max(np.abs(p - c) / s))
                    for p, c, s in zip(preds, clean, scale)
                )
                assert err < 1e-5, (name, peer, err)
                checks[peer] = err
                # and the peer does use the rates it is given
                other = make(crn, runs, clean, None)(truth * 1.5)
                assert (
                    max(float(np.max(np.abs(p - c))) for p, c in zip(other, clean)) > 0
                )
        sigmas = [NOISE * np.max(np.abs(c), axis=0) * np.ones_like(c) for c in clean]
        data = [c + rng.normal(size=c.shape) * s for c, s in zip(clean, sigmas)]
        start = truth * np.exp(rng.uniform(-np.log(3), np.log(3), truth.size))
        experiments = [
            jaxcrn.Experiment(times, d, names, inputs=x, sigma=s)
            for (x, times, names), d, s in zip(runs, data, sigmas)
        ]
        n_obs = sum(d.size for d in data)
        base = dict(
            bench="fit", problem=name, species=len(crn.species),
            reactions=len(crn.reactions), experiments=len(runs), observations=n_obs,
            noise=NOISE, truth_check=checks, rtol=RTOL, atol=ATOL,
            machine=platform.processor() or platform.machine(), cores=os.cpu_count(),
            load_average=os.getloadavg()[0], compilation_cache=cache_state,
        )  # fmt: skip
        records = []

        def record(method, seconds, cost, rates, trace, extra):
            print(
                f"# {name} {method}: {seconds:.1f} s, cost {cost:.6g}",
                file=sys.stderr,
                flush=True,
            )
            err = np.abs(rates / truth - 1) if rates is not None else None
            records.append(
                dict(
                    base, method=method, seconds=seconds, cost=cost, trace=trace,
                    rate_err_median=None if err is None else float(np.median(err)),
                    rate_err_max=None if err is None else float(np.max(err)),
                    **extra,
                )
            )  # fmt: skip

        fit_kw = dict(rates=start, rtol=RTOL, atol=ATOL, absolute_sigma=True, **TOLS)
        for base_label, jac in (("jaxcrn", "forward"), ("jaxcrn_batch", "batch")):
            if base_label not in methods:
                continue
            cold = jaxcrn.fit_rates(crn, experiments, jacobian=jac, **fit_kw)
            warm = jaxcrn.fit_rates(crn, experiments, jacobian=jac, **fit_kw)
            for label, fit in ((f"{base_label}_cold", cold), (base_label, warm)):
                inside = (fit.interval[:, 0] <= truth) & (truth <= fit.interval[:, 1])
                record(
                    label, fit.seconds, fit.cost, fit.rates,
                    list(zip(fit.history_seconds, fit.history)),
                    dict(iterations=fit.iterations,
                         evaluations=fit.evaluations, converged=fit.converged,
                         message=fit.message, truth_in_95=float(np.mean(inside)),
                         log_std_median=float(np.median(fit.log_std))),
                )  # fmt: skip
        for method, opt, iters in (
            ("jaxcrn_lbfgs", optax.lbfgs(), 500),
            ("jaxcrn_adam", optax.adam(0.05), args.adam_iterations),
        ):
            if method in methods:
                jaxcrn.fit_rates(
                    crn, experiments, optimizer=opt, max_iterations=2, **fit_kw
                )
                fit = jaxcrn.fit_rates(
                    crn, experiments, optimizer=opt, max_iterations=iters, **fit_kw
                )
                record(
                    method, fit.seconds, fit.cost, fit.rates,
                    list(zip(fit.history_seconds, fit.history)),
                    dict(iterations=fit.iterations, converged=fit.converged,
                         message=fit.message),
                )  # fmt: skip
        for peer, make in (
            ("roadrunner", roadrunner_residuals),
            ("scipy_bdf", scipy_residuals),
        ):
            if peer not in methods:
                continue
            simulate = make(crn, runs, data, sigmas)
            stop_at = None
            if args.stop_at_target and records:
                stop_at = min(r["cost"] for r in records) * (1 + TARGET)
            rec, theta, message, status = scipy_fit(
                simulate, data, sigmas, np.log(start), args.peer_max_seconds, stop_at
            )
            rates = None if theta is None else np.exp(theta)
            seconds = rec.trace[-1][0]
            record(
                peer, seconds, rec.best, rates, rec.trace,
                dict(evaluations=rec.calls, message=message, status=status),
            )  # fmt: skip
        best = min(r["cost"] for r in records)
        target = best * (1 + TARGET)
        for r in records:
            hit = [t for t, c in r.pop("trace") if c <= target]
            r["target_cost"] = target
            r["target_s"] = hit[0] if hit else None
            emit(r, out)


if __name__ == "__main__":
    main()
