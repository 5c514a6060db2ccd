"""Every automatic choice of a batch simulation, made once: `plan_batch`."""

import dataclasses
import math
import os

import diffrax
import jax
import numpy as np

from .._kinetics import DenseKinetics, LayeredKinetics, SparseLU
from .._solvers import Rodas5P
from .system import build_system, common_decay, free_decay_split


__all__ = ["BatchPlan", "plan_batch"]

SOLVERS = ("auto", "tsit5", "rodas5p", "ros34pw2", "bdf")
# solver="auto" starts every network with Tsit5 and continues each sample that
# Tsit5 finds stiff with Rodas5P, whatever its size: a large network that is not
# stiff then takes explicit steps, not factorisations (egfr_net, 356 species: 33.6
# against 1,165 ms per sample with Rodas5P from the start; random600 110 against
# 236 ms), and on stiff ones the detour is about even (MNIST-14 reduced, 2,460
# species: 233-287 against 273-294 ms; full, 5,532 species: 645 against 520 ms;
# fceri_ji 565 against 682 ms; simulate_batch of 16-256 samples, alternating;
# `benchmarks/peers.py` has the rows against the peers)
# ... except rate ensembles whose rates differ between samples by this factor or
# more: Tsit5 spends many stability-limited steps on the stiffer rate sets before it
# hands them over (IRIS reduced, 10,000 sets log-uniform in [0.1, 10], t1 = 500:
# 182 steps per sample through Tsit5 -> Rodas5P, 99 with Rodas5P throughout;
# `benchmarks/ensemble.py`)
AUTO_RODAS_RATE_SPREAD = 10.0
# lanes per worker on a CPU (benchmarks: CPU time per sample against lanes on
# networks of 3 to 60 state rows): tiny networks gain from many lanes (XLA's fixed
# cost per operation spread wider), from about a dozen rows 64 lanes keep every
# working array cache-resident, large networks 32
CPU_LANES_TINY = 4096  # state values per lane array below CPU_ROWS_MID rows
CPU_ROWS_MID = (12, 160)
CPU_LANES = (32, 512)
ACCELERATOR_LANES = 16_384
CPU_CHUNK = 1024  # with a store: the unit that is written and resumed
# without a store, a CPU chunk is as large as about 4 million state values: every
# chunk ends with a tail in which a few slow samples keep most lanes idle, and in
# an ensemble whose rate sets differ in stiffness the tails dominate (MAPK, 10,000
# rate sets x/÷ up to 10: 869 us per sample in chunks of 1,024, 209 us in one chunk)
CPU_CHUNK_STATE_NUMBERS = 1 << 22
# with a dense LU on a CPU, the lanes' matrices (lanes x n^2 numbers) stay within
# about 8 MB: egfr_net (356 species, Rodas5P, 1 worker) took 300 ms per sample at 8
# lanes against 440-480 ms at 32 (`benchmarks/solvers.py --models none --crns
# egfr_net --solvers rodas5p [--lanes 32]`)
DENSE_LU_LANE_NUMBERS = 1 << 20
# saved values of one chunk (samples x times x values) at most this many numbers
SAVED_BUDGET = 32_000_000
# Tsit5 hands a sample to Rodas5P when it has taken stability-limited steps and t1
# is at least this many such steps away (`Tsit5Stepper.far`; tuned on networks
# whose Rodas5P step costs a few Tsit5 steps: 50 made IRIS and virus to t1 = 500
# 1.4-1.8x faster than 500) ...
STIFF_FAR = 50
# ... times, with a dense LU, how much more a step's factorisation costs (n^3 / 3
# multiply-adds) than a Tsit5 step's six right-hand sides: egfr_net (356 species,
# not stiff at rtol 1e-6) at rtol 1e-4 switched at 50 and took 102 ms per sample
# against 11.9 ms on Tsit5 alone (283 steps), while fceri_ji (354 species, stiff)
# needs ~95,000 Tsit5 steps and must switch (2.8 s per sample on Tsit5 alone,
# 109-430 ms switched)

# Rodas5P's 8 stages are unrolled (faster to run) when one linear solve is at most
# this many sequential levels; beyond, they run in a loop, so the solve is compiled
# once instead of 8 times (compilation grows with the levels of the schedule)
UNROLL_MAX_SOLVE_LEVELS = 48


@dataclasses.dataclass(frozen=True)
class BatchPlan:
    """How `simulate_batch` runs a batch (see `plan_batch`).

    Attributes:
        batch: samples.
        stepper: the method: "tsit5", "rodas5p", "ros34pw2" (a Rosenbrock-W
            method whose factorisations serve several steps), "bdf" (variable-order
            BDF with a modified Newton iteration), "tsit5 -> rodas5p"
            (Tsit5, each sample it finds stiff continued by Rodas5P) or
            "diffrax:<Solver>".
        linear_solve: how implicit steps solve `(I/(gamma h) - J) x = b`: "block
            substitution" (layered networks), "sparse LU" (the sparse layout: a
            schedule from the stoichiometry), "dense LU" (the dense layout), or
            "none" (explicit methods only).
        layout: the network's array layout ("dense", "sparse", "layered").
        exact_inputs: freely decaying species (the inputs of compiled networks)
            solved exactly and left out of the state (at one common decay rate
            per sample, or, when the rates make them differ, one per species).
        n_state: rows of the engine's state.
        lanes: samples integrated side by side per worker.
        stiff_lanes: lanes of the Rodas5P pass of "tsit5 -> rodas5p" where it
            differs from `lanes` (a dense LU on a CPU), else None.
        chunk_size: samples per engine call (progress and memory granularity).
        share_size: rows of each worker's share of a chunk: its samples, padded
            to a power of two (at most the share of a full chunk) so that one
            compiled program serves every batch size that rounds to it.
        workers: threads, each running an equal share of every chunk.
        devices: the devices the workers run on.
        platform: the JAX platform.
        details: sizes behind the choices (LU non-zeros and levels, ...).
    """

    batch: int
    stepper: str
    linear_solve: str
    layout: str
    exact_inputs: bool
    n_state: int
    lanes: int
    chunk_size: int
    share_size: int
    workers: int
    devices: tuple[str, ...]
    platform: str
    details: dict = dataclasses.field(default_factory=dict, compare=False)
    stiff_lanes: int | None = None
    # the Rodas5P passes of the workers run one at a time (a dense LU on a CPU)
    serial_stiff: bool = dataclasses.field(default=False, repr=False, compare=False)
    # what the driver runs (not part of the printed plan)
    solver: object = dataclasses.field(default=None, repr=False, compare=False)
    device_objects: tuple = dataclasses.field(default=(), repr=False, compare=False)
    unroll: bool = dataclasses.field(default=True, repr=False, compare=False)
    # "tsit5 -> rodas5p": how many stability-limited steps from t1 a sample must
    # be for Tsit5 to hand it over (`Tsit5Stepper.far`; larger with a dense LU)
    stiff_far: int = dataclasses.field(default=STIFF_FAR, repr=False, compare=False)
    common_decay: bool = dataclasses.field(default=True, repr=False, compare=False)
    # planned with rate constants per sample (a given plan's calls keep even one
    # rate row per sample, so that they run the plan's program)
    rates_per_sample: bool = dataclasses.field(default=False, repr=False, compare=False)

    @property
    def stiff_switch(self) -> bool:
        return "->" in self.stepper

    def to_dict(self) -> dict:
        """The plan as plain values (for benchmark records)."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("solver", "device_objects")
        }

    def _exact_str(self) -> str:
        if not self.exact_inputs:
            return "no"
        return "yes" if self.common_decay else "yes (a decay rate per species)"

    def __str__(self) -> str:
        rows = [
            ("batch", f"{self.batch:,} samples"),
            ("stepper", self.stepper),
            ("linear solve", self.linear_solve),
            ("layout", self.layout),
            ("exact inputs", self._exact_str()),
            ("state rows", str(self.n_state)),
            (
                "lanes",
                f"{self.lanes} per worker"
                + (f" ({self.stiff_lanes} in Rodas5P)" if self.stiff_lanes else ""),
            ),
            ("chunk size", str(self.chunk_size)),
            ("share size", f"{self.share_size} rows per worker"),
            ("workers", f"{self.workers} on {', '.join(self.devices)}"),
        ]
        for k, v in self.details.items():
            rows.append((k.replace("_", " "), str(v)))
        width = max(len(k) for k, _ in rows)
        return "BatchPlan\n" + "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)


def bucket(k: int) -> int:
    """`k` rows padded to few distinct sizes (8, 16, 32, ...): one compilation
    each."""
    return 8 if k <= 8 else 1 << (k - 1).bit_length()


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _solver_name(solver) -> str:
    if solver is None:
        return "auto"
    if isinstance(solver, str):
        if solver not in SOLVERS:
            raise ValueError(
                f"solver={solver!r} is not one of {', '.join(map(repr, SOLVERS))}, "
                "None, or a diffrax.AbstractAdaptiveSolver instance."
            )
        return solver
    if isinstance(solver, Rodas5P):
        return "rodas5p"
    if type(solver) is diffrax.Tsit5:
        return "tsit5"
    if isinstance(solver, diffrax.AbstractAdaptiveSolver):
        return "diffrax"
    raise TypeError(
        f"solver must be None, one of {', '.join(map(repr, SOLVERS))}, or a "
        f"diffrax.AbstractAdaptiveSolver instance; got {type(solver).__name__}."
    )


def _rate_spread(rates) -> float:
    """The largest factor by which one rate constant differs between samples (1
    without per-sample rates; inf where a rate is 0 in some samples only)."""
    if rates is None or np.ndim(rates) < 2 or np.shape(rates)[0] < 2:
        return 1.0
    r = np.abs(np.asarray(rates, np.float64))
    hi, lo = r.max(axis=0), r.min(axis=0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = np.where(hi > 0, hi / lo, 1.0)
    return float(np.max(ratio, initial=1.0))


def _positive(name, value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def plan_batch(
    network,
    batch: int,
    *,
    solver=None,
    lanes: int | None = None,
    chunk_size: int | None = None,
    workers: int | None = None,
    devices=None,
    exact_inputs: bool | None = None,
    rates=None,
    n_saved: int = 0,
    resumable: bool = False,
) -> BatchPlan:
    """Decide how `simulate_batch` runs `batch` samples of `network`; nothing is
    compiled. `simulate_batch` calls it with its own arguments, so printing the plan
    shows exactly what a call will do.

    Arguments:
        network: the compiled network.
        batch: the number of samples.
        solver: None or "auto" (Tsit5, each sample it finds stiff continued by
            Rodas5P; Rodas5P for rate ensembles whose rates differ 10x or more
            between samples),
            "tsit5", "rodas5p", "ros34pw2" (3rd order, 4 solves a step, one
            factorisation for several steps: see `RosWStepper`), "bdf" (orders
            1-5, 1-4 solves a step, each lane's factorisation kept for several
            steps: see `BDFStepper`), a
            `jaxcrn.Rodas5P()` or `diffrax.Tsit5()`, or any
            other `diffrax.AbstractAdaptiveSolver` (stepped one lane per `vmap`
            slot; slower).
        lanes: samples side by side per worker. Default: on a CPU 512 for the
            tiniest networks (about 4,096 state values per lane array), 64 from
            12 state rows, 32 above 160, and with a dense LU at most as many as
            keep the lanes' matrices within a million numbers (8 for 356
            species); on an accelerator 16,384.
        chunk_size: samples per engine call. Default: on a CPU as many as hold
            about 4 million state values (at least 1,024, and 8 lanes' worth per
            worker; 1,024 with `resumable`), on an accelerator the lanes times the
            workers; smaller when the saved values of a chunk would exceed 32
            million numbers.
        workers: threads, each running an equal share of every chunk. Default: the
            CPU cores, or one per accelerator device; always one with a dense LU
            on a CPU (LAPACK called from several threads can deadlock there).
        devices: the devices to run on (default: `jax.devices()` of the default
            backend on accelerators, the first CPU device on a CPU).
        exact_inputs: solve the freely decaying species exactly (see
            `LaneSystem`); default: when the network has such species and no
            output reads them.
        rates: per-sample rate constants `(batch, reactions)` if any (they decide
            the form of the exact inputs' forcing).
        n_saved: values saved per sample (times x values), for the chunk size.
        resumable: the run writes a store, chunk by chunk: CPU chunks of 1,024
            samples, the unit a resumed run keeps.

    Example:
        >>> from jaxcrn import compile_crn, parse_crn, plan_batch
        >>> net = compile_crn(parse_crn("A <=> B [kf=1, kr=2]\\ninput a = A"))
        >>> plan = plan_batch(net, 10_000, workers=2)
        >>> plan.stepper, plan.linear_solve, plan.workers
        ('tsit5 -> rodas5p', 'sparse LU', 2)
    """
    if not isinstance(batch, int | np.integer) or batch < 1:
        raise ValueError(f"batch must be a positive number of samples, got {batch!r}.")
    lanes = _positive("lanes", lanes)
    chunk_size = _positive("chunk_size", chunk_size)
    workers = _positive("workers", workers)
    name = _solver_name(solver)
    platform = jax.default_backend()
    if devices is None:
        devs = tuple(jax.devices()) if platform != "cpu" else (jax.devices("cpu")[0],)
    else:
        devs = tuple(devices)
        if not devs:
            raise ValueError("devices is empty; pass None for the default devices.")
    accel = devs[0].platform != "cpu"

    # exact inputs
    d_species, d_rxns = free_decay_split(network)
    possible = d_species.size > 0 and network.n_species - d_species.size > 0
    common = True
    if possible:
        rate_sets = (
            np.asarray(network.rates)[None, :] if rates is None else np.asarray(rates)
        )
        common = bool(
            np.isfinite(common_decay(network, d_species, d_rxns, rate_sets)).all()
        )
    if exact_inputs is None:
        exact = possible
    elif exact_inputs and not possible:
        raise ValueError(
            "exact_inputs=True is not possible: the network has no freely decaying "
            "species (that no output reads)."
        )
    else:
        exact = bool(exact_inputs)
    system, smap = build_system(network, exact, common)
    n_state = system.n_state

    # method
    spread = _rate_spread(rates)
    if name == "auto":
        stepper = "rodas5p" if spread >= AUTO_RODAS_RATE_SPREAD else "tsit5 -> rodas5p"
    elif name == "diffrax":
        stepper = f"diffrax:{type(solver).__name__}"
    else:
        stepper = name
    kin = system.kinetics
    if stepper == "tsit5":
        linear = "none"
    elif stepper.startswith("diffrax:"):
        linear = "the solver's own"
    elif isinstance(kin, LayeredKinetics):
        linear = "block substitution"
    elif isinstance(kin, DenseKinetics) or not isinstance(
        getattr(kin, "lu", None), SparseLU
    ):
        linear = "dense LU"
    else:
        linear = "sparse LU"
    details: dict = {}
    if spread > 1.0:
        details["rate spread"] = f"{spread:.3g}x between samples"
    lu = getattr(kin, "lu", None)
    solve_levels = 0
    if isinstance(lu, SparseLU) and linear == "sparse LU":
        details["lu"] = (
            f"{lu.nnz} non-zeros of {lu.n * lu.n}, {lu.n_pairs} multiply-adds, "
            f"{lu.n_levels} levels"
        )
        solve_levels = lu.n_solve_levels
    elif isinstance(kin, LayeredKinetics):
        solve_levels = len(kin.waves)
    unroll = solve_levels <= UNROLL_MAX_SOLVE_LEVELS
    stiff_far = STIFF_FAR
    if "->" in stepper and linear == "dense LU":
        t = kin.tables
        rhs = t.n_reactions * (t.max_order + 1) + len(t.net_c)
        ratio = (t.n_species**3 / 3) / (6 * max(rhs, 1))
        stiff_far = max(STIFF_FAR, math.ceil(STIFF_FAR * ratio))
        details["stiff switch"] = (
            f"at {stiff_far} stability-limited steps from t1 (a factorisation costs "
            f"{ratio:.3g} Tsit5 steps)"
        )
    if "rodas5p" in stepper:
        details["rodas5p stages"] = "unrolled" if unroll else "looped (long solve)"

    # sizes
    if workers is None:
        workers = len(devs) if accel else _cpu_count()
    lanes_given = lanes
    if lanes is None:
        if accel:
            lanes = ACCELERATOR_LANES
        elif n_state < CPU_ROWS_MID[0]:
            target = CPU_LANES_TINY // max(n_state, 1)
            lanes = min(CPU_LANES[1], 1 << max(target, 1).bit_length() - 1)
        elif n_state <= CPU_ROWS_MID[1]:
            lanes = 64
        else:
            lanes = CPU_LANES[0]
    # a dense LU on a CPU: few lanes, whose matrices stay in cache, and one worker
    # at a time; with Tsit5 first, only in the Rodas5P pass
    dense_cpu = linear == "dense LU" and not accel
    switch = "->" in stepper
    stiff_lanes = None
    if dense_cpu:
        fit = max(1, DENSE_LU_LANE_NUMBERS // max(n_state * n_state, 1))
        fit = 1 << fit.bit_length() - 1
        if lanes_given is None and switch:
            stiff_lanes = fit
        elif lanes_given is None:
            lanes = min(lanes, fit)
    if chunk_size is None:
        if accel:
            chunk_size = lanes * workers
        else:
            big = 0 if resumable else CPU_CHUNK_STATE_NUMBERS // max(n_state, 1)
            chunk_size = max(CPU_CHUNK, 8 * lanes * workers, big)
        if n_saved:
            chunk_size = min(chunk_size, max(workers, SAVED_BUDGET // n_saved))
    full_chunk = chunk_size
    chunk_size = min(chunk_size, batch)
    workers = max(1, min(workers, chunk_size))
    serial = False
    if dense_cpu and workers > 1:
        # LAPACK's LU called from several threads at once deadlocks in XLA:CPU
        # (jaxlib 0.10: two threads factoring 356 x 356 matrices in a loop hang
        # for good; 64 x 64 do not): one worker factors at a time, never a hang
        if switch:
            serial = True
            details["rodas5p pass"] = (
                "one worker at a time (LAPACK's LU from two threads can deadlock)"
            )
        else:
            workers = 1
            details["one worker"] = "dense LU (LAPACK from two threads can deadlock)"
    # a batch smaller than a chunk is padded to a power of two per worker (the
    # padding rows end at once): one compiled program per size class, not one per
    # batch size (3-10 s each)
    share = min(-(-full_chunk // workers), bucket(-(-chunk_size // workers)))
    lanes = max(1, min(lanes, share))
    if stiff_lanes is not None:
        stiff_lanes = max(1, min(stiff_lanes, share, lanes))
        stiff_lanes = None if stiff_lanes == lanes else stiff_lanes
    return BatchPlan(
        batch=int(batch),
        stepper=stepper,
        linear_solve=linear,
        layout=network.form,
        exact_inputs=exact,
        n_state=n_state,
        common_decay=common or not exact,
        lanes=lanes,
        stiff_lanes=stiff_lanes,
        serial_stiff=serial,
        chunk_size=chunk_size,
        share_size=share,
        workers=workers,
        devices=tuple(str(d) for d in devs),
        platform=platform,
        details=details,
        solver=solver,
        device_objects=devs,
        unroll=unroll,
        stiff_far=stiff_far,
        rates_per_sample=rates is not None and np.ndim(rates) == 2,
    )
