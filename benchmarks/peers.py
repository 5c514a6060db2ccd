"""Benchmark jaxcrn side by side with libRoadRunner and scipy on compiled networks.

The networks are IRIS 4-8-3, virus 10-32-4 and MNIST-14 196-512-512-10, each with
its trained weights (`experiments/models/*.npz`) and/or fixed-seed random +-1
weights (biases N(0, 0.5^2)), compiled by jaxcrn to the full (Algorithm 1,
`nn_to_crn`) and the reduced (Algorithm 2, `reduce_crn`) CRN. Every tool simulates
the same inputs (the dataset's test split; IRIS and virus rows are repeated up to
the batch size) from t = 0 to t1 = 50 at rtol 1e-6, atol 1e-9, all rates 1:

- `jaxcrn`: `simulate_batch(net, x, t1, saveat=None)` with its defaults (engine,
  solver, lanes) on the whole batch; first call (compile + run) and the best of
  `--repeats` further calls. Uses every core XLA gives it.
- `roadrunner`: libRoadRunner, CVODE (BDF + Newton, `stiff=True`), built from
  `jaxcrn.to_sbml(crn)`; `roadrunner_adams`: the same with Adams-Moulton
  (`stiff=False`), often faster on non-stiff networks.
- `lsoda`, `bdf`, `rk45`: scipy `solve_ivp`, with a numpy gather + sparse-product
  right-hand side; BDF gets the analytic Jacobian as a sparse CSC matrix, LSODA the
  same Jacobian as a dense array (it takes no other), RK45 none.

Peers run one sample at a time in a separate process (one core: BLAS threads are
set to 1) that is abandoned after `--peer-timeout` seconds per tool and network,
with a memory limit (`--peer-memory-gb`); they simulate only the first
`--peer-samples` samples, and the mean time per sample is what is compared.

Correctness comes first. The reference is jaxcrn at rtol 1e-10, atol 1e-12 (itself
checked against scipy Radau at rtol 1e-10 on `--ref-check` samples of the small
networks). A tool passes when, on every sample it simulated, each output is within
1e-4 of the reference relative to the rail scale, `|y - y_ref| <= 1e-4 * max(1,
max_j [Y_j+], max_j [Y_j-])` (outputs are differences of large concentrations, up to
~1e6 on MNIST), and its argmax equals the reference's (a mismatch where the
reference's top two outputs are within that tolerance counts as a tie). jaxcrn's
argmax must also equal the network's forward pass. A tool that fails is reported as
failed; a peer that times out, crashes or fails to load is reported as such with
the time spent.

One JSON line per (model, weights, CRN, tool) goes to stdout (and is appended to
`--out`), with samples/s, time per sample, compile/load time, the correctness
figures, jaxcrn's speed-up over the best peer, and the machine; `--table` writes
the same as a Markdown table (never replacing a file without `--force`).

Options with per-case values take a default and `KEY=VALUE` overrides, where KEY
names a model, weights, CRN or tool, or several joined by `/`; the most specific
KEY wins: `--peer-timeout 120,mnist14=90,mnist14/full/bdf=300`.

    pip install -e ".[bench]"      # scipy and libroadrunner
    python benchmarks/peers.py [--models iris,virus,mnist14] [--weights both]
        [--variants full,reduced] [--skip mnist14/full/random]
        [--tools jaxcrn,roadrunner,roadrunner_adams,lsoda,bdf,rk45]
        [--batch 1000,mnist14=100] [--repeats 3,mnist14=1]
        [--peer-samples 100,mnist14=2] [--peer-timeout 300] [--peer-memory-gb GB]
        [--ref-rtol 1e-10,mnist14=1e-8] [--ref-atol 1e-12,mnist14=1e-10]
        [--data DIR] [--out results/peers.jsonl] [--table results/peers.md] [--force]

Example (a few minutes on 2 cores):

    python benchmarks/peers.py --models iris,virus --batch 200 --peer-samples 20

The full comparison (~35 minutes on 2 cores; libRoadRunner runs out of memory
loading MNIST-14, and one scipy solve of the full MNIST-14 CRN takes minutes):

    python benchmarks/peers.py --skip mnist14/full/random \
        --batch 1000,mnist14=100 --repeats 3,mnist14=1 \
        --peer-samples 100,mnist14=1,mnist14/reduced/bdf=3,mnist14/roadrunner_adams=0 \
        --peer-timeout 120,mnist14=90,mnist14/bdf=300,mnist14/full/rk45=150,\
mnist14/lsoda=60,mnist14/roadrunner=60,mnist14/reduced/trained/roadrunner=240 \
        --out results/peers.jsonl --table results/peers.md
"""

import argparse
import datetime
import importlib.metadata
import importlib.util
import json
import math
import multiprocessing
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
import traceback

import numpy as np


MODELS = {"iris": (4, 8, 3), "virus": (10, 32, 4), "mnist14": (196, 512, 512, 10)}
VARIANTS = ("full", "reduced")
WEIGHTS = ("trained", "random")
TOOLS = ("jaxcrn", "roadrunner", "roadrunner_adams", "lsoda", "bdf", "rk45")
PEERS = TOOLS[1:]
KEYWORDS = frozenset(MODELS) | frozenset(VARIANTS) | frozenset(WEIGHTS) | {*TOOLS}
DEFAULT_TOOLS = "jaxcrn,roadrunner,roadrunner_adams,lsoda,bdf,rk45"
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
PEER_CONFIG = {
    "roadrunner": "CVODE BDF + Newton (stiff=True, dense linear solver, internal "
    "difference-quotient Jacobian), LLVM MCJIT; reset() + set input "
    "concentrations + simulate(0, t1, 2) per sample, selections: the output rails",
    "roadrunner_adams": "CVODE Adams-Moulton (stiff=False), otherwise as roadrunner",
    "lsoda": "solve_ivp(method='LSODA'), analytic Jacobian as a dense array, numpy "
    "gather + sparse-product RHS",
    "bdf": "solve_ivp(method='BDF'), analytic sparse CSC Jacobian (SuperLU), numpy "
    "gather + sparse-product RHS",
    "rk45": "solve_ivp(method='RK45'), numpy gather + sparse-product RHS",
    "radau": "solve_ivp(method='Radau'), analytic sparse CSC Jacobian",
}


# ---------------------------------------------------------------------------------
# Options that take per-model values: "1000,mnist14=100,mnist14/full=50".


def per_case(text: str, cast, what: str):
    """Parse `DEFAULT,KEY=V,...` into a function `(model, weights, crn, tool) -> V`.

    A KEY names a model, weights, a CRN or a tool, or several joined by `/`
    (`mnist14/full`, `mnist14/roadrunner`); the most specific matching KEY wins."""
    default = None
    table = {}
    known = KEYWORDS
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.rpartition("=")
        try:
            v = cast(value)
        except ValueError:
            raise SystemExit(
                f"{what}: {value!r} in {text!r} is not a valid value."
            ) from None
        if not sep:
            default = v
            continue
        parts = frozenset(p.strip() for p in key.split("/"))
        if not parts <= known:
            raise SystemExit(
                f"{what}: {key!r} in {text!r} is not a MODEL, WEIGHTS, CRN or TOOL, "
                f"or several joined by '/', from {', '.join(MODELS)}; "
                f"{', '.join(WEIGHTS)}; {', '.join(VARIANTS)}; {', '.join(TOOLS)}."
            )
        table[parts] = v

    def get(*names: str):
        hits = [k for k in table if k <= set(names)]
        if hits:
            return table[max(hits, key=len)]
        if default is None:
            raise SystemExit(f"{what}: {text!r} gives no value for {'/'.join(names)}.")
        return default

    return get


# ---------------------------------------------------------------------------------
# The peers. Everything below up to main() needs numpy only, so that the worker
# processes start fast and never load JAX.


def network_spec(crn) -> dict:
    """A CRN as plain arrays (picklable, numpy only) for the peer simulators."""
    species = list(crn.species)
    index = {s: i for i, s in enumerate(species)}
    reactants, net = [], []
    for r, rxn in enumerate(crn.reactions):
        lst = []
        for s, c in rxn.reactants:
            lst.extend([index[s]] * c)
        reactants.append(lst)
        for s, c in rxn.net.items():
            net.append((r, index[s], c))
    net_arr = np.asarray(net, np.int64).reshape(-1, 3)
    init = np.zeros(len(species))
    for s, v in crn.init:
        init[index[s]] += v
    return dict(
        species=species,
        reactants=reactants,
        net_r=net_arr[:, 0].copy(),
        net_s=net_arr[:, 1].copy(),
        net_c=net_arr[:, 2].astype(np.float64),
        rates=np.array([r.rate for r in crn.reactions], np.float64),
        init=init,
        in_pos=np.array([index[s.pos] for s in crn.inputs], np.int64),
        in_neg=np.array(
            [-1 if s.neg is None else index[s.neg] for s in crn.inputs], np.int64
        ),
        out_pos=np.array([index[s.pos] for s in crn.outputs], np.int64),
        out_neg=np.array(
            [-1 if s.neg is None else index[s.neg] for s in crn.outputs], np.int64
        ),
    )


def initial_state(spec: dict, x: np.ndarray) -> np.ndarray:
    """`init` plus the dual-rail inputs: x > 0 onto the positive rail, else -x onto
    the negative one (what `MassActionNetwork.initial_state` does with offset 0)."""
    y0 = spec["init"].copy()
    x = np.asarray(x, np.float64)
    dual = spec["in_neg"] >= 0
    np.add.at(y0, spec["in_pos"], np.where(dual, np.maximum(x, 0.0), x))
    np.add.at(y0, spec["in_neg"][dual], np.maximum(-x[dual], 0.0))
    return y0


class MassAction:
    """Mass-action kinetics in numpy/scipy: `rhs(t, y)` and the analytic Jacobian.

    `rhs` gathers the reactant concentrations (padded reactant table, padding points
    at a constant 1), multiplies them into fluxes and applies the net stoichiometry
    as a CSR matrix product. `jac` assembles J = N^T d(flux)/dy straight into a CSC
    matrix of fixed pattern: each (net entry, reactant slot) pair of a reaction adds
    `c * d flux_r / d y_s` at a precomputed position, summed with one `bincount`.
    """

    def __init__(self, spec: dict):
        from scipy import sparse

        self.sparse = sparse
        n, m = len(spec["species"]), len(spec["rates"])
        k = max([1] + [len(r) for r in spec["reactants"]])
        table = np.full((m, k), n, np.int64)
        for r, lst in enumerate(spec["reactants"]):
            table[r, : len(lst)] = lst
        self.n, self.k, self.table = n, k, table
        self.rates = spec["rates"]
        self.buf = np.ones(n + 1)
        net_r, net_s, net_c = spec["net_r"], spec["net_s"], spec["net_c"]
        self.stoich = sparse.csr_matrix((net_c, (net_s, net_r)), shape=(n, m))
        # Jacobian pattern: pairs (net entry e of reaction r, reactant slot j of r)
        e = np.repeat(np.arange(net_r.size), k)
        j = np.tile(np.arange(k), net_r.size)
        slot = net_r[e] * k + j
        col = table.ravel()[slot]
        keep = col < n
        e, slot, col = e[keep], slot[keep], col[keep]
        key = col * n + net_s[e]
        uniq, pos = np.unique(key, return_inverse=True)
        self.jac_slot = slot
        self.jac_coef = net_c[e]
        self.jac_pos = pos.ravel()
        self.nnz = uniq.size
        self.jac_indices = (uniq % n).astype(np.int32)
        self.jac_indptr = np.searchsorted(uniq // n, np.arange(n + 1)).astype(np.int32)
        self.nfev = 0
        self.njev = 0

    def rhs(self, t, y):
        self.nfev += 1
        buf = self.buf
        buf[: self.n] = y
        g = buf[self.table]
        flux = self.rates * (g[:, 0] if self.k == 1 else np.prod(g, axis=1))
        return self.stoich @ flux

    def dflux(self, y) -> np.ndarray:
        """`d flux_r / d y_{table[r, j]}` with the other reactants held, (m, k)."""
        buf = self.buf
        buf[: self.n] = y
        g = buf[self.table]
        if self.k == 1:
            return np.broadcast_to(self.rates[:, None], g.shape)
        if self.k == 2:
            return self.rates[:, None] * g[:, ::-1]
        out = np.empty_like(g)
        for j in range(self.k):
            out[:, j] = self.rates * np.prod(np.delete(g, j, axis=1), axis=1)
        return out

    def jac(self, t, y):
        self.njev += 1
        w = self.jac_coef * self.dflux(y).ravel()[self.jac_slot]
        data = np.bincount(self.jac_pos, weights=w, minlength=self.nnz)
        return self.sparse.csc_matrix(
            (data, self.jac_indices, self.jac_indptr), shape=(self.n, self.n)
        )

    def jac_dense(self, t, y):
        return self.jac(t, y).toarray()


def scipy_simulator(spec: dict, method: str, t1: float, rtol: float, atol: float):
    """`run(x) -> (final state, info)` with scipy `solve_ivp`."""
    from scipy.integrate import solve_ivp

    kin = MassAction(spec)
    jac = {"BDF": kin.jac, "Radau": kin.jac, "LSODA": kin.jac_dense}.get(method)
    options = {} if jac is None else {"jac": jac}

    def run(x):
        kin.nfev = kin.njev = 0
        sol = solve_ivp(
            kin.rhs,
            (0.0, t1),
            initial_state(spec, x),
            method=method,
            rtol=rtol,
            atol=atol,
            t_eval=[t1],
            **options,
        )
        if not sol.success:
            raise RuntimeError(f"solve_ivp({method}) failed: {sol.message}")
        return sol.y[:, -1], {"nfev": kin.nfev, "njev": kin.njev, "nlu": int(sol.nlu)}

    return run


def roadrunner_simulator(
    spec: dict, sbml: str, t1: float, rtol: float, atol: float, stiff: bool
):
    """`(run, load_s, rails)`: `run(x) -> (output rail concentrations, info)` with
    libRoadRunner, the time to build the RoadRunner (SBML parse + LLVM compile), and
    the names of the rails `run` returns (positive rails, then negative)."""
    import roadrunner

    t = time.perf_counter()
    rr = roadrunner.RoadRunner(sbml)
    load_s = time.perf_counter() - t
    integ = rr.integrator
    integ.stiff = stiff
    integ.relative_tolerance = rtol
    integ.absolute_tolerance = atol
    integ.maximum_num_steps = 1_000_000
    ids = list(rr.model.getFloatingSpeciesIds())
    where = {s: i for i, s in enumerate(ids)}
    names = spec["species"]
    rails = [names[i] for i in spec["out_pos"]] + [
        names[i] for i in spec["out_neg"] if i >= 0
    ]
    rr.timeCourseSelections = ["time"] + [f"[{s}]" for s in rails]
    inputs = [int(i) for i in spec["in_pos"]] + [
        int(i) for i in spec["in_neg"] if i >= 0
    ]
    rr_index = [where[names[i]] for i in inputs]

    def run(x):
        y0 = initial_state(spec, x)
        rr.reset()
        rr.model.setFloatingSpeciesConcentrations(rr_index, y0[inputs].tolist())
        res = rr.simulate(0.0, t1, 2)
        return np.asarray(res)[-1, 1:], {}

    return run, load_s, rails


def peak_rss_mb() -> float | None:
    """This process's peak resident memory (VmHWM; unlike ru_maxrss, it is not
    inherited across exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _set_memory_limit(limit_bytes: int | None) -> None:
    if limit_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))


def _peer_worker(conn) -> None:
    """Child process: receive the job, build the simulator, then stream one message
    per sample."""
    stage = "loading"
    try:
        job = conn.recv()
        _set_memory_limit(job.get("memory_bytes"))
        spec, tool = job["spec"], job["tool"]
        t1, rtol, atol = job["t1"], job["rtol"], job["atol"]
        n_out = spec["out_pos"].size
        t = time.perf_counter()
        if tool.startswith("roadrunner"):
            run, load_s, _ = roadrunner_simulator(
                spec, job["sbml"], t1, rtol, atol, stiff=tool == "roadrunner"
            )

            def outputs(x):
                rails, info = run(x)
                pos, neg = rails[:n_out], np.zeros(n_out)
                has_neg = spec["out_neg"] >= 0
                neg[has_neg] = rails[n_out:]
                return pos, neg, info

        else:
            method = {"lsoda": "LSODA", "bdf": "BDF", "rk45": "RK45", "radau": "Radau"}[
                tool
            ]
            run = scipy_simulator(spec, method, t1, rtol, atol)
            load_s = time.perf_counter() - t

            def outputs(x):
                y, info = run(x)
                pos = y[spec["out_pos"]]
                neg = np.where(spec["out_neg"] >= 0, y[spec["out_neg"]], 0.0)
                return pos, neg, info

        conn.send(("loaded", load_s))
        for i, x in enumerate(job["x"]):
            stage = f"sample {i + 1}"
            t = time.perf_counter()
            pos, neg, info = outputs(x)
            conn.send(("sample", i, time.perf_counter() - t, pos, neg, info))
        conn.send(("done", peak_rss_mb()))
    except BaseException as e:  # report anything, never hang the parent
        memory = isinstance(e, MemoryError) or "bad_alloc" in str(e)
        hint = " (out of memory under --peer-memory-gb)" if memory else ""
        conn.send(
            (
                "error",
                f"failed while {stage}{hint}: {type(e).__name__}: {e}\n"
                + traceback.format_exc(),
            )
        )
    finally:
        conn.close()


def run_peer(job: dict, timeout: float) -> dict:
    """Run `_peer_worker` in a fresh process; give up after `timeout` seconds.

    Returns `status` ("ok", "timeout", "error" or "crashed"), `load_s`, per-sample
    `times`, `pos`/`neg` output rails, `info`, `elapsed_s` and `message`."""
    ctx = multiprocessing.get_context("spawn")
    recv, child_end = ctx.Pipe()
    saved = {v: os.environ.get(v) for v in THREAD_VARS}
    os.environ.update(dict.fromkeys(THREAD_VARS, "1"))  # peers get one core
    try:
        proc = ctx.Process(target=_peer_worker, args=(child_end,), daemon=True)
        start = time.perf_counter()
        proc.start()
    finally:
        for v, old in saved.items():
            if old is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = old
    child_end.close()
    out = dict(status=None, load_s=None, times=[], pos=[], neg=[], info=[])
    out.update(message="", peak_rss_mb=None, loaded_at_s=None)
    try:  # the job goes over the pipe: a child that dies cannot block us
        recv.send(job)
    except OSError:
        pass  # reported below as a crash
    deadline = start + timeout
    while out["status"] is None:
        left = deadline - time.perf_counter()
        if left <= 0:
            done = len(out["times"])
            where = "loading" if out["load_s"] is None else f"sample {done + 1}"
            out["status"] = "timeout"
            out["message"] = (
                f"timeout after {timeout:g} s (while {where}; {done} of "
                f"{len(job['x'])} samples done)"
            )
            break
        try:
            ready = recv.poll(min(left, 0.5))
            msg = recv.recv() if ready else None
        except (EOFError, OSError):
            msg = ("crashed",)
        if msg is None:
            if not proc.is_alive() and not recv.poll(0):
                msg = ("crashed",)
            else:
                continue
        if msg[0] == "loaded":
            out["load_s"] = msg[1]
            out["loaded_at_s"] = time.perf_counter() - start
        elif msg[0] == "sample":
            _, _, dt, pos, neg, info = msg
            out["times"].append(dt)
            out["pos"].append(pos)
            out["neg"].append(neg)
            out["info"].append(info)
        elif msg[0] == "done":
            out["status"] = "ok"
            out["peak_rss_mb"] = msg[1]
        elif msg[0] == "error":
            out["status"] = "error"
            elapsed = time.perf_counter() - start
            out["message"] = f"after {elapsed:.0f} s, {msg[1].strip()}"
        else:
            proc.join(5)
            code = proc.exitcode
            out["status"] = "crashed"
            out["message"] = (
                f"the worker died (exit code {code}"
                + ("; likely out of memory under --peer-memory-gb" if code else "")
                + ")"
            )
    if proc.is_alive():
        proc.terminate()
        proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join()
    recv.close()
    out["elapsed_s"] = time.perf_counter() - start
    return out


# ---------------------------------------------------------------------------------
# Correctness.


def check_outputs(
    out: np.ndarray, ref: np.ndarray, scale: np.ndarray, tol: float
) -> dict:
    """Compare outputs `(k, outputs)` with the reference, relative to `scale` `(k,)`.

    Fails on any NaN, any `|out - ref| > tol * scale`, or an argmax that differs from
    the reference's where the reference's top two are more than `tol * scale`
    apart (closer: a tie, counted separately)."""
    out = np.asarray(out, np.float64)
    err = np.abs(out - ref)
    finite = np.isfinite(out).all(axis=1)
    err = np.where(np.isfinite(err), err, np.inf)
    scaled = err / scale[:, None]
    bad_value = (~finite) | (scaled > tol).any(axis=1)
    a = np.argmax(np.where(np.isfinite(out), out, -np.inf), axis=1)
    b = np.argmax(ref, axis=1)
    rows = np.arange(out.shape[0])
    mismatch = a != b
    tie = mismatch & (ref[rows, b] - ref[rows, a] <= tol * scale)
    return dict(
        max_abs_err=float(err.max(initial=0.0)),
        max_scaled_err=float(scaled.max(initial=0.0)),
        value_failures=int(bad_value.sum()),
        argmax_mismatches=int(mismatch.sum()),
        argmax_ties=int(tie.sum()),
        passed=bool(not bad_value.any() and not (mismatch & ~tie).any()),
    )


# ---------------------------------------------------------------------------------
# Models, inputs, machine.


def random_params(sizes, seed: int):
    """Random +-1 weights and N(0, 0.5^2) biases for layer sizes `sizes`."""
    rng = np.random.default_rng(seed)
    return [
        (rng.choice([-1.0, 1.0], size=(a, b)), rng.normal(0.0, 0.5, size=b))
        for a, b in zip(sizes[:-1], sizes[1:], strict=True)
    ]


def machine_info() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_gb = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    mem_gb = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass

    def version(dist):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return None

    try:
        commit = subprocess.run(
            ["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return dict(
        cpu=cpu,
        cores=os.cpu_count(),
        cores_available=len(os.sched_getaffinity(0)),
        memory_gb=mem_gb,
        python=platform.python_version(),
        versions={
            d: version(d)
            for d in (
                "jax",
                "jaxlib",
                "diffrax",
                "equinox",
                "numpy",
                "scipy",
                "libroadrunner",
            )
        },
        jaxcrn_commit=commit,
    )


def default_data_dir() -> str | None:
    env = os.environ.get("JAXCRN_DATA")
    if env:
        return env
    guess = os.path.join(ROOT, "..", "shared", "datasets")
    return os.path.abspath(guess) if os.path.isdir(guess) else None


def require_peers(tools) -> None:
    missing = []
    if any(t in ("lsoda", "bdf", "rk45") for t in tools):
        if importlib.util.find_spec("scipy") is None:
            missing.append("scipy")
    if any(t.startswith("roadrunner") for t in tools):
        if importlib.util.find_spec("roadrunner") is None:
            missing.append("libroadrunner")
    if missing:
        raise SystemExit(
            f"benchmarks/peers.py needs {' and '.join(missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not installed. Install the "
            "'bench' extra: pip install -e \".[bench]\" (from the repository root), "
            "or leave the tools out with --tools jaxcrn."
        )


# ---------------------------------------------------------------------------------
# Output.


def fmt_time(s) -> str:
    if s is None or not math.isfinite(s):
        return "-"
    if s >= 1:
        return f"{s:.3g} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3g} ms"
    return f"{s * 1e6:.3g} µs"


def markdown(records: list[dict], command: str, machine: dict, args) -> str:
    v = machine["versions"]
    refs = {}
    for r in records:
        if r.get("reference"):
            refs.setdefault(r["reference"], []).append(r["model"])
    ref_text = "; ".join(
        f"{ref} ({', '.join(dict.fromkeys(models))})" for ref, models in refs.items()
    )
    lines = [
        "# jaxcrn against its peers",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, "
        f"{machine['memory_gb']} GB; Python {machine['python']}, jax {v['jax']}, "
        f"diffrax {v['diffrax']}, numpy {v['numpy']}, scipy {v['scipy']}, "
        f"libroadrunner {v['libroadrunner']}; jaxcrn {machine['jaxcrn_commit']}.",
        "",
        f"Command: `{command}`",
        "",
        f"t1 = {args.t1:g}, rtol {args.rtol:g}, atol {args.atol:g}, rates 1. "
        f"Reference: {ref_text or '-'}. A tool passes when every "
        f"output is within {args.tol:g} x max(1, largest output rail) of the "
        "reference, with the same argmax. jaxcrn's time per sample is its batch "
        "time / batch (all cores); a peer's is its mean over the samples it ran, "
        "one process on one core. Speed-up: jaxcrn samples/s over the best passing "
        "peer's ('>' where a peer that timed out could only be bounded); on a peer's "
        "row: over that peer.",
        "",
        "| model | weights | CRN | species / reactions | tool | status | samples "
        "| time / sample | samples/s | compile / load | max error (scaled / abs) "
        "| argmax | jaxcrn speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        if r["tool"] == "jaxcrn":
            samples = f"{r['samples']} (ref {r.get('samples_checked', '-')})"
            setup = fmt_time(r.get("compile_s"))
            fwd = r.get("forward_argmax_mismatches")
            arg = f"{r.get('argmax_mismatches', '-')} / fwd {fwd}"
        else:
            samples = f"{r['samples']} / {r['samples_requested']}"
            setup = fmt_time(r.get("load_s"))
            arg = str(r.get("argmax_mismatches", "-"))
        err = (
            f"{r['max_scaled_err']:.1e} / {r['max_abs_err']:.1e}"
            if r.get("max_scaled_err") is not None
            else "-"
        )
        sps = r.get("samples_per_s")
        speed = r.get("speedup_vs_best_peer", r.get("jaxcrn_speedup"))
        if speed is not None:
            speed_s = ("> " if r.get("speedup_is_lower_bound") else "") + (
                f"{speed:.3g}x"
            )
        else:
            speed_s = "-"
        status = r["status"]
        if r.get("message") and status != "ok":
            status += f": {r['message'].splitlines()[0][:80]}"
        lines.append(
            f"| {r['model']} | {r['weights']} | {r['crn']} | {r['species']} / "
            f"{r['reactions']} | {r['tool']} | {status} | {samples} | "
            f"{fmt_time(r.get('per_sample_s'))} | "
            f"{'-' if sps is None else f'{sps:.4g}'} | {setup} | {err} | {arg} | "
            f"{speed_s} |"
        )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------
# Main.


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--models", default="iris,virus,mnist14")
    ap.add_argument("--weights", choices=("trained", "random", "both"), default="both")
    ap.add_argument("--variants", default="full,reduced", help="full,reduced")
    ap.add_argument("--tools", default=DEFAULT_TOOLS, help=f"from {', '.join(TOOLS)}")
    ap.add_argument(
        "--skip",
        default="",
        help="cases to leave out, e.g. mnist14/full/random (comma-separated)",
    )
    ap.add_argument("--batch", default="1000,mnist14=100", help="jaxcrn batch size")
    ap.add_argument(
        "--peer-samples",
        default="100,mnist14=2",
        help="peers simulate the first K samples (0: skip the peer)",
    )
    ap.add_argument(
        "--peer-timeout",
        default="300",
        help="seconds per peer and network, load included",
    )
    ap.add_argument(
        "--peer-memory-gb",
        type=float,
        default=None,
        help="address-space limit of a peer process (default: 60%% of memory)",
    )
    ap.add_argument(
        "--repeats",
        default="3,mnist14=1",
        help="timed jaxcrn calls after the first (the best is kept)",
    )
    ap.add_argument("--lanes", type=int, default=None, help="jaxcrn lanes (default)")
    ap.add_argument("--t1", type=float, default=50.0)
    ap.add_argument("--rtol", type=float, default=1e-6)
    ap.add_argument("--atol", type=float, default=1e-9)
    ap.add_argument(
        "--ref-rtol",
        default="1e-10,mnist14=1e-8",
        help="reference tolerance (1e-10 costs ~15x a 1e-6 solve on MNIST)",
    )
    ap.add_argument("--ref-atol", default="1e-12,mnist14=1e-10")
    ap.add_argument(
        "--ref-check",
        type=int,
        default=5,
        help="check the reference against scipy Radau on this many samples "
        "(networks below 1000 species; 0: off)",
    )
    ap.add_argument("--tol", type=float, default=1e-4, help="scaled error allowed")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    ap.add_argument("--data", default=default_data_dir(), help="MNIST data folder")
    ap.add_argument("--models-dir", default=os.path.join(ROOT, "experiments", "models"))
    ap.add_argument("--out", help="append the JSON lines to this file")
    ap.add_argument("--table", help="write a Markdown table to this file")
    ap.add_argument("--force", action="store_true", help="replace --table if present")
    args = ap.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    args.tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    for what, vals, allowed in (
        ("--models", args.models, MODELS),
        ("--variants", args.variants, VARIANTS),
        ("--tools", args.tools, TOOLS),
    ):
        bad = [v for v in vals if v not in allowed]
        if bad or not vals:
            raise SystemExit(
                f"{what} {','.join(vals)!r}: expected a comma-separated list from "
                f"{', '.join(allowed)}."
            )
    for name in ("batch", "peer_samples", "peer_timeout", "repeats"):
        cast = float if name == "peer_timeout" else int
        setattr(args, name, per_case(getattr(args, name), cast, f"--{name}"))
    args.ref_rtol = per_case(args.ref_rtol, float, "--ref-rtol")
    args.ref_atol = per_case(args.ref_atol, float, "--ref-atol")
    args.skip = [frozenset(k.strip().split("/")) for k in args.skip.split(",") if k]
    for key in args.skip:
        if not key <= KEYWORDS:
            raise SystemExit(
                f"--skip: {'/'.join(sorted(key))} is not MODEL/WEIGHTS/CRN from "
                f"{', '.join(MODELS)}; {', '.join(WEIGHTS)}; {', '.join(VARIANTS)}."
            )
    if args.table and os.path.exists(args.table) and not args.force:
        raise SystemExit(
            f"{args.table} already exists; pass --force to replace it, or choose "
            "another --table."
        )
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    peers = [t for t in args.tools if t != "jaxcrn"]
    require_peers(peers)
    command = shlex.join(
        ["python", os.path.relpath(os.path.abspath(__file__))]
        + list(sys.argv[1:] if argv is None else argv)
    )

    import jax

    jax.config.update("jax_enable_x64", True)
    import jaxcrn
    from jaxcrn import datasets

    machine = machine_info()
    machine["jax_device"] = str(jax.devices()[0])
    machine["jax_device_kind"] = jax.devices()[0].device_kind
    mem_total = (machine["memory_gb"] or 8.0) * 2**30
    mem_limit = int(
        args.peer_memory_gb * 2**30 if args.peer_memory_gb else 0.6 * mem_total
    )
    settings = dict(t1=args.t1, rtol=args.rtol, atol=args.atol, rates=1.0)
    out_file = None
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        out_file = open(args.out, "a")
    records: list[dict] = []

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    def emit(rec: dict) -> None:
        rec = {**rec, **settings, "machine": machine, "command": command}
        rec["date"] = datetime.datetime.now().isoformat(timespec="seconds")
        records.append(rec)
        line = json.dumps(rec)
        print(line, flush=True)
        if out_file:
            out_file.write(line + "\n")
            out_file.flush()
        if args.table:
            os.makedirs(os.path.dirname(os.path.abspath(args.table)), exist_ok=True)
            with open(args.table, "w") as f:
                f.write(markdown(records, command, machine, args))

    weights = ["trained", "random"] if args.weights == "both" else [args.weights]
    for model_name in args.models:
        sizes = MODELS[model_name]
        data = datasets.load(
            model_name, args.data if model_name == "mnist14" else None
        ).test.x
        for w in weights:
            if w == "trained":
                path = os.path.join(args.models_dir, f"{model_name}.npz")
                params = jaxcrn.load_params(path)
                got = (params[0][0].shape[0],) + tuple(p[0].shape[1] for p in params)
                if got != sizes:
                    raise SystemExit(f"{path} has layer sizes {got}; expected {sizes}.")
            else:
                params = random_params(sizes, args.seed)
            full = jaxcrn.nn_to_crn(params)
            for variant in args.variants:
                if any(key <= {model_name, w, variant} for key in args.skip):
                    log(f"[{model_name} {w} {variant}] skipped (--skip)")
                    continue
                crn = full if variant == "full" else jaxcrn.reduce_crn(full)
                run_case(
                    args,
                    jaxcrn,
                    model_name,
                    w,
                    variant,
                    params,
                    crn,
                    data,
                    peers,
                    mem_limit,
                    emit,
                    log,
                )
    if out_file:
        out_file.close()
    return 0


def run_case(
    args,
    jaxcrn,
    model,
    weights,
    variant,
    params,
    crn,
    data,
    peers,
    mem,
    emit,
    log,
):
    """Reference, jaxcrn and every peer on one network; emits its records."""
    tag = f"[{model} {weights} {variant}]"

    def opt(name, tool="jaxcrn"):
        return getattr(args, name)(model, weights, variant, tool)

    batch = opt("batch")
    ref_rtol, ref_atol = opt("ref_rtol"), opt("ref_atol")
    if model == "mnist14" and batch > data.shape[0]:
        raise SystemExit(f"--batch {batch}: MNIST-14 has {data.shape[0]} test images.")
    n_base = min(batch, data.shape[0])
    base = data[:n_base]
    x = base[np.arange(batch) % n_base]
    counts = jaxcrn.count_reactions(crn)
    common = dict(
        benchmark="peers",
        model=model,
        layers=list(MODELS[model]),
        weights=weights,
        crn=variant,
        species=counts.species,
        reactions=counts.reactions,
        max_product_stoichiometry=counts.max_product_stoichiometry,
    )
    log(f"{tag} {counts.species} species, {counts.reactions} reactions, batch {batch}")
    forward = np.asarray(jaxcrn.forward(params, base))

    # -- jaxcrn: first call (compile + run), reference, check, timed repeats ----------
    t = time.perf_counter()
    net = jaxcrn.compile_crn(crn)
    build_s = time.perf_counter() - t
    kw = dict(rtol=args.rtol, atol=args.atol, saveat=None, progress=False)
    if args.lanes:
        kw["lanes"] = args.lanes
    jx = None
    if "jaxcrn" in args.tools:
        t = time.perf_counter()
        res = jaxcrn.simulate_batch(net, x, args.t1, **kw)
        first_s = time.perf_counter() - t
        jx = dict(first_s=first_s, res=res)
        log(f"{tag} jaxcrn first call {first_s:.2f} s")
    t = time.perf_counter()
    ref = jaxcrn.simulate_batch(
        net,
        base,
        args.t1,
        rtol=ref_rtol,
        atol=ref_atol,
        saveat=None,
        progress=False,
        keep_states=True,
        max_steps=200_000,
    )
    ref_s = time.perf_counter() - t
    if not np.all(ref.status == 0):
        raise SystemExit(
            f"{tag} the reference failed on {int(np.sum(ref.status != 0))} samples "
            f"({ref.summary()}); try a looser --ref-rtol."
        )
    pos_idx = [net.index(crn_sig.pos) for crn_sig in crn.outputs]
    neg_idx = [net.index(s.neg) for s in crn.outputs if s.neg is not None]
    ref_out = np.asarray(ref.outputs_final)
    rails = np.abs(np.asarray(ref.y_final)[:, pos_idx + neg_idx])
    scale = np.maximum(1.0, rails.max(axis=1))
    ref_fwd = int(np.sum(np.argmax(ref_out, 1) != np.argmax(forward, 1)))
    log(
        f"{tag} reference ({ref_rtol:g}/{ref_atol:g}) {ref_s:.2f} s, "
        f"{n_base} samples, rail scale up to {scale.max():.3g}, argmax != forward on "
        f"{ref_fwd}"
    )
    ref_fields = dict(
        reference=f"jaxcrn rtol {ref_rtol:g} atol {ref_atol:g}",
        reference_s=round(ref_s, 3),
        reference_argmax_vs_forward_mismatches=ref_fwd,
        rail_scale_max=float(scale.max()),
    )
    # independent check of the reference: scipy Radau at the reference tolerance
    n_check = min(args.ref_check, n_base) if counts.species < 1000 else 0
    if n_check and importlib.util.find_spec("scipy") is not None:
        job = dict(
            tool="radau",
            spec=network_spec(crn),
            x=base[:n_check],
            t1=args.t1,
            rtol=ref_rtol,
            atol=ref_atol,
            memory_bytes=mem,
        )
        r = run_peer(job, opt("peer_timeout", "radau"))
        if r["status"] == "ok":
            out = np.asarray(r["pos"]) - np.asarray(r["neg"])
            c = check_outputs(out, ref_out[:n_check], scale[:n_check], 1e-7)
            ref_fields.update(
                reference_check="scipy Radau",
                reference_check_samples=n_check,
                reference_check_max_scaled_err=c["max_scaled_err"],
            )
            log(f"{tag} reference vs Radau: scaled error {c['max_scaled_err']:.2e}")
            if c["max_scaled_err"] > 1e-6:
                log(f"{tag} WARNING: the reference disagrees with Radau")
        else:
            ref_fields.update(reference_check=f"scipy Radau: {r['status']}")
            log(f"{tag} reference check: Radau {r['status']} {r['message'][:200]}")

    # -- peers ----------------------------------------------------------------------
    peer_recs = []
    spec = network_spec(crn) if peers else None
    sbml = (
        jaxcrn.to_sbml(crn) if any(p.startswith("roadrunner") for p in peers) else None
    )
    for tool in peers:
        timeout = opt("peer_timeout", tool)
        n_peer = min(opt("peer_samples", tool), batch)
        if n_peer <= 0:
            log(f"{tag} {tool}: skipped (--peer-samples 0)")
            peer_recs.append(
                dict(
                    common,
                    tool=tool,
                    config=PEER_CONFIG[tool],
                    status="skipped",
                    message="--peer-samples 0",
                    samples=0,
                    samples_requested=0,
                )
            )
            continue
        xs = x[:n_peer]
        ref_rows = np.arange(n_peer) % n_base
        job = dict(
            tool=tool,
            spec=spec,
            sbml=sbml if tool.startswith("roadrunner") else None,
            x=xs,
            t1=args.t1,
            rtol=args.rtol,
            atol=args.atol,
            memory_bytes=mem,
        )
        log(f"{tag} {tool}: {n_peer} samples, timeout {timeout:g} s")
        r = run_peer(job, timeout)
        k = len(r["times"])
        rec = dict(
            common,
            tool=tool,
            config=PEER_CONFIG[tool],
            status=r["status"],
            message=r["message"],
            samples=k,
            samples_requested=n_peer,
            load_s=None if r["load_s"] is None else round(r["load_s"], 4),
            elapsed_s=round(r["elapsed_s"], 3),
            timeout_s=timeout,
            cores_used=1,
            peak_rss_mb=r["peak_rss_mb"],
        )
        if k:
            times = np.asarray(r["times"])
            out = np.asarray(r["pos"]) - np.asarray(r["neg"])
            c = check_outputs(out, ref_out[ref_rows[:k]], scale[ref_rows[:k]], args.tol)
            rec.update(
                per_sample_s=float(times.mean()),
                per_sample_min_s=float(times.min()),
                per_sample_median_s=float(np.median(times)),
                samples_per_s=float(1.0 / times.mean()),
                **{key: c[key] for key in c if key != "passed"},
            )
            if r["info"] and r["info"][0]:
                rec["solver_stats_median"] = {
                    key: float(np.median([i[key] for i in r["info"]]))
                    for key in r["info"][0]
                }
            if not c["passed"]:
                rec["status"] = "failed"
                rec["message"] = (
                    f"wrong answer: {c['value_failures']} samples off the reference "
                    f"by more than {args.tol:g} x rail scale (max scaled error "
                    f"{c['max_scaled_err']:.2e}), argmax differs on "
                    f"{c['argmax_mismatches'] - c['argmax_ties']}"
                    + (f"; {r['message']}" if r["message"] else "")
                )
            elif r["status"] == "timeout":
                rec["status"] = "partial"
        elif r["status"] == "timeout" and r["loaded_at_s"] is not None:
            # the first sample started when it reported "loaded" and never finished
            rec["per_sample_s_lower_bound"] = round(
                r["elapsed_s"] - r["loaded_at_s"], 3
            )
        log(
            f"{tag} {tool}: {rec['status']}"
            + (
                f", {fmt_time(rec['per_sample_s'])} per sample over {k}, load "
                f"{fmt_time(r['load_s'])}, scaled error {rec['max_scaled_err']:.1e}"
                if k
                else ""
            )
            + (f" ({r['message'].splitlines()[0][:200]})" if r["message"] else "")
        )
        peer_recs.append(rec)

    # -- jaxcrn: check, then time -----------------------------------------------------
    best_sps, bound = None, False
    for rec in peer_recs:
        if rec["status"] in ("ok", "partial") and rec["samples"]:
            if best_sps is None or rec["samples_per_s"] > best_sps:
                best_sps = rec["samples_per_s"]
    for rec in peer_recs:  # a timed-out peer might be faster than its bound shows
        lb = rec.get("per_sample_s_lower_bound")
        if lb:
            if best_sps is None or 1.0 / lb > best_sps:
                best_sps, bound = 1.0 / lb, True
    if jx is not None:
        res = jx["res"]
        out = np.asarray(res.outputs_final)
        rows = np.arange(batch) % n_base
        c = check_outputs(out, ref_out[rows], scale[rows], args.tol)
        fwd_arg = np.argmax(forward, axis=1)[rows]
        fwd_mis = np.argmax(out, axis=1) != fwd_arg
        top2 = np.sort(forward, axis=1)[:, -2:] if forward.shape[1] > 1 else None
        fwd_tie = (
            (top2[:, 1] - top2[:, 0] <= 1e-9 * np.maximum(1.0, np.abs(top2[:, 1])))[
                rows
            ]
            if top2 is not None
            else np.zeros(batch, bool)
        )
        status_ok = bool(np.all(res.status == 0))
        passed = c["passed"] and status_ok and not (fwd_mis & ~fwd_tie).any()
        from jaxcrn._simulate import engine_settings

        plan = engine_settings(net, batch, lanes=args.lanes)
        rec = dict(
            common,
            tool="jaxcrn",
            config=(
                f"simulate_batch defaults ({plan['engine']} engine, form {net.form}, "
                f"lanes {plan['lanes']} x {plan['workers']} workers, chunk_size "
                f"{plan['chunk_size']}, saveat None)"
            ),
            form=net.form,
            engine=plan["engine"],
            lanes=plan["lanes"],
            workers=plan["workers"],
            chunk_size=plan["chunk_size"],
            batch=batch,
            samples=batch,
            samples_checked=batch,
            unique_inputs=n_base,
            build_s=round(build_s, 4),
            first_call_s=round(jx["first_s"], 4),
            cores_used=os.cpu_count(),
            steps_median=float(np.median(res.num_steps)),
            rejected_median=float(np.median(res.num_rejected)),
            **{key: c[key] for key in c if key != "passed"},
            forward_argmax_mismatches=int(fwd_mis.sum()),
            forward_argmax_ties=int((fwd_mis & fwd_tie).sum()),
            **ref_fields,
        )
        if not passed:
            rec["status"] = "failed"
            rec["message"] = (
                f"wrong answer: {c['value_failures']} samples off the reference by "
                f"more than {args.tol:g} x rail scale (max scaled error "
                f"{c['max_scaled_err']:.2e}), argmax differs from the reference on "
                f"{c['argmax_mismatches'] - c['argmax_ties']} and from the forward "
                f"pass on {int((fwd_mis & ~fwd_tie).sum())}; status "
                f"{np.unique(res.status).tolist()}"
            )
        else:
            runs = []
            for _ in range(opt("repeats")):
                t = time.perf_counter()
                jaxcrn.simulate_batch(net, x, args.t1, **kw)
                runs.append(time.perf_counter() - t)
            steady = min(runs) if runs else jx["first_s"]
            sps = batch / steady
            rec.update(
                status="ok",
                message="",
                repeats=len(runs),
                run_s=round(steady, 4),
                compile_s=round(max(jx["first_s"] - steady, 0.0), 4),
                per_sample_s=steady / batch,
                samples_per_s=sps,
                peak_rss_mb=peak_rss_mb(),
            )
            if best_sps:
                rec["speedup_vs_best_peer"] = sps / best_sps
                rec["speedup_is_lower_bound"] = bound
                rec["speedup_vs_best_peer_on_all_cores"] = sps / (
                    best_sps * (os.cpu_count() or 1)
                )
                for prec in peer_recs:
                    if prec.get("samples_per_s"):
                        prec["jaxcrn_speedup"] = sps / prec["samples_per_s"]
            log(
                f"{tag} jaxcrn: {sps:.4g} samples/s ({fmt_time(steady / batch)} per "
                f"sample), compile {rec['compile_s']:.2f} s"
                + (
                    f", {rec['speedup_vs_best_peer']:.3g}x the best peer"
                    if best_sps
                    else ""
                )
            )
        if not passed:
            log(f"{tag} jaxcrn FAILED: {rec['message']}")
        emit(rec)
    for prec in peer_recs:
        emit(dict(prec, **{k: v for k, v in ref_fields.items() if k == "reference"}))


if __name__ == "__main__":
    raise SystemExit(main())
