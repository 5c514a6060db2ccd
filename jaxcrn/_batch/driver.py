"""`simulate_batch`: the host side of the batch engine.

The batch is cut into chunks; every chunk into equal shares, one per worker
thread (one per device on accelerators; on a CPU, XLA runs arrays of this size on
one core per call, so threads use the cores); each share is one lane scheduler run
(`lanes.py`) with the plan's stepper, in segments so that progress shows. Samples
that Tsit5 finds stiff continue with Rodas5P from where it stopped.

Each worker thread is committed to one device: its share's arrays and the
network's are placed there (`jax.device_put`), so each device runs its own lane
loop, at its own pace, and the shares are joined in input order. With a store
(`store.py`) every chunk's results are written as it finishes and a resumed run
computes only the chunks not done; in a multi-process run (`distributed.py`) each
process takes its share of the chunks.
"""

import json
import os
import threading
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._kinetics._base import host_array
from .._memory_maps import release_if_near_limit
from .._network import check_fits, real_array
from .._progress import Progress
from .._simulate import (
    SimulationResult,
    Status,
    _resolve_ts,
    _warn_tolerance,
    check_solve_args,
)
from . import lanes as L
from .distributed import Processes
from .plan import BatchPlan, bucket, plan_batch
from .steppers import (
    BDFStepper,
    DiffraxStepper,
    Rodas5PStepper,
    RosWStepper,
    Tsit5Stepper,
)
from .store import META, Store, digest, fingerprint_of
from .system import (
    Forcing,
    LaneParams,
    build_system,
    common_decay,
    free_decay_split,
)


__all__ = ["simulate_batch"]

SAVE = ("outputs", "species")
# with progress on, a segment of the loop runs about this long (seconds)
SEGMENT_SECONDS = 1.0


# ---------------------------------------------------------------------------------
# Validation.


def _as_float_array(name, value):
    a = real_array(name, value)
    if a is None:
        raise TypeError(
            f"{name} is a traced value: simulate_batch runs on the host; pass concrete "
            "arrays (for jit/vmap/grad use jaxcrn.simulate or simulate_differentiable)."
        )
    return a


def _check_inputs(network, inputs) -> np.ndarray | None:
    if inputs is None:
        return None
    x = _as_float_array("inputs", inputs)
    if x.ndim == 1 and network.n_inputs != 1 and x.shape[0] == network.n_inputs:
        raise ValueError(
            f"inputs has shape {x.shape}: one input vector; simulate_batch expects a "
            f"batch of shape (n, {network.n_inputs}). Use inputs[None] for one sample."
        )
    if x.ndim == 1 and network.n_inputs == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] != network.n_inputs:
        raise ValueError(
            f"inputs has shape {x.shape} but the network has {network.n_inputs} "
            f"inputs; expected shape (n, {network.n_inputs})."
        )
    bad = ~np.isfinite(x)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(
            f"inputs[{i}, {j}] = {x[i, j]} is not finite; inputs must be finite "
            "numbers."
        )
    single = np.asarray(network.input_neg) < 0
    if single.any():
        neg = x[:, single] < 0
        if neg.any():
            i, j = np.argwhere(neg)[0]
            col = np.flatnonzero(single)[j]
            raise ValueError(
                f"inputs[{i}, {col}] = {x[i, col]} is negative, but input "
                f"{network.input_names[col]} is a single species (non-negative only); "
                "declare it dual-rail (input x = P - N) to allow negative values."
            )
    check_fits(
        "inputs", x, network.rates.dtype,
        lambda i: f"inputs[{i[0]}, {i[1]}] (input {network.input_names[i[1]]})",
    )  # fmt: skip
    return x


def _check_rows(name, value, width, what, quantity, labels, dtype):
    """A `(n, width)` array (or `(width,)`, one row shared by every sample) of
    finite, non-negative numbers; errors name the row, the column and its label.
    `what`: the columns ("species"); `quantity`: the values ("concentrations");
    `labels`: one name per column."""
    a = _as_float_array(name, value)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[1] != width:
        raise ValueError(
            f"{name} has shape {np.shape(value)} but the network has {width} {what}; "
            f"expected shape (n, {width}) or ({width},)."
        )
    bad = ~np.isfinite(a) | (a < 0)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(
            f"{name}[{i}, {j}] ({labels[j]}) = {a[i, j]}: {quantity} must be finite "
            "and >= 0."
        )
    check_fits(name, a, dtype, lambda i: f"{name}[{i[0]}, {i[1]}] ({labels[i[1]]})")
    return a


def _batch_size(**arrays) -> int:
    sizes = {k: v.shape[0] for k, v in arrays.items() if v is not None}
    big = {k: n for k, n in sizes.items() if n != 1}
    if len(set(big.values())) > 1:
        desc = ", ".join(f"{k} has {n} rows" for k, n in sizes.items())
        raise ValueError(
            f"{desc}: the batched arguments must have the same number of rows (or "
            "one row, shared by every sample)."
        )
    return max(sizes.values(), default=0)


# ---------------------------------------------------------------------------------
# One share of a chunk on one worker.


@eqx.filter_jit
def _initial(
    network, forcing: Forcing | None, rows, x, base, rates, offset, state_rxns, system,
    ctl, real, stepper, n_lanes: int, n_times: int, n_values: int,
):  # fmt: skip
    """Network-order initial states `(m, species)`, the lanes' parameters, the
    queue of the share (its padding rows, at or after row `real`, flagged to end at
    once: a short chunk costs what its samples cost, and one plan's program serves
    every batch size), the inputs' total decay rates and the first pass's carry
    (built here, not in a program of its own: one compilation fewer)."""
    m = x.shape[0]
    net = network

    def one(xi, bi):
        n_i = net if bi is None else eqx.tree_at(lambda n: n.y_init, net, bi)
        return n_i.initial_state(xi if xi.shape[0] else None, offset=offset)

    if base is None:
        y0 = jax.vmap(lambda xi: one(xi, None))(x)
    else:
        y0 = jax.vmap(one)(x, jnp.broadcast_to(base, (m, base.shape[-1])))
    state = y0[:, rows]  # sample-first, state rows
    rates_l = None
    if rates is not None:
        rates_l = jnp.broadcast_to(rates, (m, rates.shape[-1]))
    if forcing is None:
        p = LaneParams(None, None, None)
        k_decay = jnp.zeros((m, 0), y0.dtype)
    else:
        shared = net.rates if rates_l is None else rates_l
        force, decay, k_decay = forcing.params(shared, y0)
        p = LaneParams(None, force, decay)  # sample-first
    if rates_l is not None:
        p = LaneParams(rates_l[:, state_rxns], p.force, p.decay)
    dtype = state.dtype
    t0 = jnp.zeros((m,), dtype)
    h0, f0, bad0 = L.prepare(
        system, state, t0, jnp.full((m,), jnp.nan, dtype), p, ctl, real
    )
    zi = jnp.zeros((m,), jnp.int32)
    inf = jnp.full((m,), jnp.inf, dtype)
    queue = L.Queue.build(state, f0, t0, h0, inf, zi, zi, zi, bad0, p)
    carry = L.initial_carry(system, stepper, queue, n_lanes, n_times, n_values)
    return y0, queue, p, k_decay, carry


# the Rodas5P passes of a plan with `serial_stiff` (a dense LU on a CPU: LAPACK's LU
# from two threads at once can deadlock) run one worker at a time
_SERIAL_STIFF = threading.Lock()


class _Share:
    """Run one share: pass 1 with the plan's stepper, pass 2 (Rodas5P) for the
    samples Tsit5 finds stiff."""

    def __init__(
        self,
        plan,
        system,
        smap,
        saving,
        ctl,
        stop_when_steady,
        bar,
        segment,
        halt: threading.Event | None = None,
    ):
        self.plan = plan
        self.system = system
        self.smap = smap
        self.saving = saving
        self.ctl = ctl
        self.stop = stop_when_steady
        self.bar = bar
        self.segment = segment
        self.halt = halt  # set: stop at the end of the current segment

    def _sizes(self, stiff: bool = False):
        """The lane count (of the Rodas5P pass with `stiff`), save times and saved
        values of the carry."""
        lanes = (stiff and self.plan.stiff_lanes) or self.plan.lanes
        return lanes, self.saving.ts.shape[0], self.saving.pos.shape[0]

    def _loop(self, stepper, queue, carry, counted):
        static = (self.system, stepper, queue, self.saving, self.ctl, self.stop)
        n_iter = self.segment.start()
        reported = 0
        while True:
            t0 = time.perf_counter()
            carry = L.run(static, carry, host_array(n_iter, np.int32))
            done = carry.done
            if self.bar is not None:
                finished = int(np.sum(counted(L.host_status(carry.record))))
                self.bar.update(finished - reported)
                reported = finished
            if done:
                return carry.record
            if self.halt is not None and self.halt.is_set():
                raise _Halted
            n_iter = self.segment.next(n_iter, time.perf_counter() - t0)

    def __call__(self, network, forcing, rows, x, base, rates, offset, real):
        """Simulate the share; `real`: how many of its rows are samples (the rest
        pad it to the common share size, and are not counted as progress)."""
        self.real = real
        first, second = _steppers(self.plan, self.ctl)
        y0_net, queue, p, k_decay, carry = _initial(
            network,
            forcing,
            rows,
            x,
            base,
            rates,
            offset,
            host_array(self.smap.state_reactions, np.int32),
            self.system,
            self.ctl,
            host_array(real, np.int32),
            first,
            *self._sizes(),
        )
        if second is None:
            record = self._loop(first, queue, carry, lambda s: s[:real] >= 0)
        else:
            record = self._loop(
                first,
                queue,
                carry,
                lambda s: (s[:real] >= 0) & (s[:real] != Status.STIFF),
            )
            n_stiff = int(np.sum(L.host_status(record) == Status.STIFF))
            if n_stiff and self.bar is not None:
                self.bar.set_postfix(f"{n_stiff} stiff: continued with Rodas5P")
            if self.plan.serial_stiff:
                with _SERIAL_STIFF:
                    record = self._continue_stiff(second, queue, record)
            else:
                record = self._continue_stiff(second, queue, record)
        steady, t_steady, saved = L.finalize(
            self.system, self.saving, record, p, self.ctl.steady_tol
        )
        return y0_net, record, steady, t_steady, saved, k_decay

    def _continue_stiff(self, stepper, queue, record):
        """Continue the samples that Tsit5 stopped as stiff, from where they
        stopped (time, state, step size, counts, saved points), with Rodas5P."""
        status = L.host_status(record)
        idx = np.flatnonzero(status == Status.STIFF)
        if idx.size == 0:
            return record
        c = idx.size
        m2 = bucket(c)
        # padding: gathers repeat the last stiff sample, scatters drop (index m)
        pad = m2 - c
        j = host_array(np.concatenate([idx, np.repeat(idx[-1:], pad)]), np.int32)
        k = host_array(np.concatenate([idx, np.full(pad, status.size)]), np.int32)
        q2, carry = _stiff_queue(
            self.system, queue, record, j, host_array(c), self.ctl, stepper,
            *self._sizes(stiff=True),
        )  # fmt: skip
        real = np.concatenate([idx < self.real, np.zeros(pad, bool)])
        r2 = self._loop(stepper, q2, carry, lambda s: (s >= 0) & real)
        return _merge_stiff(record, r2, k)


@eqx.filter_jit
def _stiff_queue(
    system, queue: L.Queue, record: L.Record, j, c, ctl, stepper,
    n_lanes: int, n_times: int, n_values: int,
) -> tuple[L.Queue, L.Carry]:  # fmt: skip
    """The queue of pass 2, samples `j` (the first `c` real, the rest padding) as
    Tsit5 left them, and its first carry."""
    p = jax.tree_util.tree_map(lambda a: a[j], queue.p)
    y0, t0, h0 = record.y[j], record.t[j], record.h[j]
    _, f0, bad0 = L.prepare(system, y0, t0, h0, p, ctl)
    # the padding repeats the last sample: flagged, it ends at its first
    # iteration instead of being integrated again
    bad0 = bad0 | (jnp.arange(j.shape[0]) >= c)
    q2 = L.Queue.build(
        y0,
        f0,
        t0,
        h0,
        record.t_steady[j],
        record.steps[j],
        record.rejected[j],
        record.save_k[j],
        bad0,
        p,
    )
    return q2, L.initial_carry(system, stepper, q2, n_lanes, n_times, n_values)


@eqx.filter_jit
def _merge_stiff(record: L.Record, r2: L.Record, k) -> L.Record:
    """`record` with the pass-2 results `r2` written at samples `k` (out-of-range
    entries of `k` are padding and dropped); pass 2's saved points from where
    pass 1 stopped saving."""
    kk = jnp.minimum(k, record.y.shape[0] - 1)
    later = (
        jnp.arange(record.saved.shape[1], dtype=jnp.int32)[None, :]
        >= record.save_k[kk][:, None]
    )[:, :, None]
    saved = jnp.where(later, r2.saved, record.saved[kk])
    return L.Record(
        y=record.y.at[k].set(r2.y, mode="drop"),
        saved=record.saved.at[k].set(saved, mode="drop"),
        info=record.info.at[k].set(r2.info, mode="drop"),
    )


class _Halted(Exception):
    """A worker stopped because the caller was interrupted."""


def _steppers(plan: BatchPlan, ctl):
    if plan.stepper == "tsit5 -> rodas5p":
        return (
            Tsit5Stepper(detect_stiff=True, far=plan.stiff_far),
            Rodas5PStepper(unroll=plan.unroll),
        )
    if plan.stepper == "tsit5":
        return Tsit5Stepper(), None
    if plan.stepper == "rodas5p":
        return Rodas5PStepper(unroll=plan.unroll), None
    if plan.stepper == "ros34pw2":
        return RosWStepper(), None
    if plan.stepper == "bdf":
        return BDFStepper(), None
    return DiffraxStepper.of(plan.solver, ctl.rtol, ctl.atol), None


class _Segments:
    """Iterations per loop segment: everything at once without progress; with
    progress, adapted so that a segment takes about `SEGMENT_SECONDS`."""

    def __init__(self, progress: bool):
        self.progress = progress

    def start(self) -> int:
        return 64 if self.progress else 2**31 - 1

    def next(self, n: int, seconds: float) -> int:
        if not self.progress:
            return n
        scale = SEGMENT_SECONDS / max(seconds, 1e-3)
        return int(min(max(n * min(max(scale, 0.25), 4.0), 16), 2**30))


# ---------------------------------------------------------------------------------
# The public function.


def simulate_batch(
    network,
    inputs=None,
    t1=50.0,
    *,
    y0=None,
    rates=None,
    solver=None,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    max_steps: int = 16_384,
    saveat=201,
    save: str | None = None,
    stop_when_steady: bool = False,
    steady_tol: float = 1e-6,
    offset: float = 0.0,
    lanes: int | None = None,
    chunk_size: int | None = None,
    keep_states: bool = False,
    exact_inputs: bool | None = None,
    workers: int | None = None,
    devices=None,
    store=None,
    resume: bool = False,
    distributed: bool | None = None,
    progress: bool = False,
    plan: BatchPlan | None = None,
) -> SimulationResult:
    """Simulate many samples of a network: input vectors, initial states, rate sets.

    One engine runs every network (see `plan_batch` for what it chooses and
    `print(plan_batch(...))` to see it): a fixed number of lanes per worker, each
    integrating one sample with its own time, adaptive step size and status; a lane
    whose sample is done takes the next one, so nobody waits for the slowest
    sample. The state of all lanes is one species-major array; implicit steps
    solve their linear systems by the network's structure (block substitution for
    layered networks, a sparse LU scheduled from the stoichiometry otherwise).

    The computation runs in the network's dtype (`network.rates.dtype`): float64
    when `jax.config.update("jax_enable_x64", True)` ran before `compile_crn`,
    otherwise float32 (about 7 digits; values outside its range are refused).

    Inputs are validated first: a non-finite value, a negative value for a
    single-species input, a negative concentration or rate constant raises
    `ValueError` naming the row and column. A sample whose solve fails is flagged in
    `status`/`converged` (its final values are NaN) and never stops the others.

    Arguments:
        network: the compiled network.
        inputs: input vectors `(batch, inputs)` (the network's `input`
            declarations), or None.
        t1: end time (an upper bound with `stop_when_steady`).
        y0: initial concentrations `(batch, species)` or `(species,)`, in
            `network.species` order, replacing the network's `init` values (inputs
            are added on top); default the `init` values.
        rates: rate constants `(batch, reactions)` (one set per sample) or
            `(reactions,)`; default `network.rates`.
        solver: None (automatic), "tsit5", "rodas5p", "ros34pw2", "bdf",
            `Rodas5P()`, `diffrax.Tsit5()` or any diffrax adaptive solver; see
            `plan_batch`.
        rtol, atol: step-size tolerances: each step's error estimate is kept
            within `atol + rtol * |y|` for every species. `atol` is in the
            network's concentration units: in molar units 1e-9 is a nanomolar,
            the scale on which many signalling and oscillating models work, so
            use 1e-12 or less there (or express concentrations in uM or nM).
            `rtol` below 4x the dtype's epsilon (5e-7 in float32) needs float64
            (a `ToleranceWarning` says so).
        max_steps: steps (accepted + rejected) per sample before giving up.
        saveat: values are saved at these times: an int `n` (n evenly spaced times
            from 0 to t1, default 201), an array of times, or None (final values
            only).
        save: what is saved at those times: "outputs" (default when the network
            declares outputs) or "species" (every species; the default otherwise).
        stop_when_steady: end each sample once `max |dy/dt| <= steady_tol`; saved
            values after that time hold the final values. A species that can
            grow by catalysis and sits between 0 and `atol / rtol` while it grows
            (a seed) is not steady, however slowly it changes yet.
        steady_tol: the steady-state threshold (also decides `converged`).
        offset: dual-rail offset added to both rails of every input.
        lanes, chunk_size, workers, exact_inputs: see `plan_batch`.
        devices: the devices to spread the workers over, e.g. `jax.devices()`
            (default: every accelerator, or the first CPU device; see
            `plan_batch`). Each worker thread runs its share of every chunk on its
            device; the results come back in input order, the same on any number
            of devices.
        keep_states: also return the final state of every sample (`y_final`).
        store: a folder to write the results to, chunk by chunk, as each chunk
            finishes (each file written completely before it is renamed into
            place, and listed in the store's index only then); an interrupted
            run keeps every finished chunk. A folder that holds a run is refused
            unless `resume`.
        resume: continue the run in `store`: the chunks its index lists are read
            back, the others computed. The arguments must be those of the run
            that made the store (its `store.json` records a fingerprint of them;
            a mismatch raises `ValueError` naming what differs); the chunk size
            is the store's.
        distributed: in a multi-process run (`jax.distributed.initialize`), None
            or True: every process calls `simulate_batch` with the same
            arguments, simulates its share of the chunks on its own devices, and
            returns the whole batch (gathered with
            `jax.experimental.multihost_utils`, or read back from `store`, which
            must then be on a file system every process sees). False: this
            process simulates the whole batch alone.
        progress: show a progress bar (samples done / total, samples per second).
        plan: run with this `plan_batch` result instead of planning the call
            (`solver`, `lanes`, `chunk_size`, `workers`, `devices` and
            `exact_inputs` are then the plan's and must be left at None). Every
            chunk is padded to the plan's chunk size, and padding rows end at
            once, so calls with any number of samples run one compiled program:
            `plan = plan_batch(net, 1024)` once, then `simulate_batch(net, x,
            plan=plan)` compiles only for the first `x`, whatever its rows (as
            long as the calls pass the same arguments: `y0` or not, `rates` per
            sample if the plan was made with them, the same `saveat` times).

    Returns:
        A `SimulationResult` of NumPy arrays with a leading batch axis. `ts` has
        shape `(batch, times)`; `outputs` `(batch, times, outputs)`; `ys` holds the
        saved species with `save="species"` (else None). `t_converged` is the time
        of the accepted step from which `max |dy/dt| <= steady_tol` held for good.

    Example:
        >>> import numpy as np
        >>> from jaxcrn import compile_crn, parse_crn, simulate_batch
        >>> net = compile_crn(parse_crn("X -> Y\\ninput x = X\\noutput y = Y"))
        >>> res = simulate_batch(net, np.array([[1.0], [2.0]]), 30.0)
        >>> np.round(res.outputs_final[:, 0], 4).tolist()
        [1.0, 2.0]
    """
    from .._network import MassActionNetwork

    if not isinstance(network, MassActionNetwork):
        raise TypeError(
            f"simulate_batch expects a MassActionNetwork (see compile_crn), got "
            f"{type(network).__name__}."
        )
    if network.n_species == 0:
        raise ValueError("the network has no species: there is nothing to simulate.")
    x = _check_inputs(network, inputs)
    base = None
    if y0 is not None:
        labels = [f"species {sp}" for sp in network.species]
        base = _check_rows(
            "y0", y0, network.n_species, "species", "concentrations", labels,
            network.rates.dtype,
        )  # fmt: skip
    rate_rows = None
    if rates is not None:
        labels = [f"reaction {r}" for r in range(network.n_reactions)]
        rate_rows = _check_rows(
            "rates", rates, network.n_reactions, "reactions", "rate constants",
            labels, network.rates.dtype,
        )  # fmt: skip
    if x is None and network.n_inputs:
        raise ValueError(
            f"The network has {network.n_inputs} inputs "
            f"({', '.join(network.input_names[:6])}); pass inputs of shape (n, "
            f"{network.n_inputs})."
        )
    n = _batch_size(inputs=x, y0=base, rates=rate_rows)
    if n == 0:
        raise ValueError(
            "nothing to simulate: pass inputs, y0 or rates with at least one row."
        )
    if x is None:
        x = np.zeros((1, 0))
    save = save or ("outputs" if network.n_outputs else "species")
    if save not in SAVE:
        raise ValueError(f"save={save!r} is not one of {', '.join(map(repr, SAVE))}.")
    if save == "outputs" and not network.n_outputs:
        raise ValueError(
            "save='outputs': the network declares no outputs; save='species'."
        )
    dtype = network.y_init.dtype
    t1_np = _as_float_array("t1", t1).astype(dtype)
    t1_arr = host_array(t1_np)
    ts = _resolve_ts(saveat, t1_arr, dtype)
    check_solve_args(
        rtol=rtol, atol=atol, t1=t1_np, ts=ts, steady_tol=steady_tol,
        max_steps=max_steps, offset=offset,
    )  # fmt: skip
    _warn_tolerance(rtol, dtype)
    n_times = 0 if ts is None else int(ts.shape[0])
    n_values = network.n_outputs if save == "outputs" else network.n_species
    if plan is not None and not isinstance(plan, BatchPlan):
        raise TypeError(
            f"plan must be a BatchPlan (see jaxcrn.plan_batch), got "
            f"{type(plan).__name__}."
        )
    given_plan = plan is not None
    if (
        rate_rows is not None
        and rate_rows.shape[0] == 1
        and not (given_plan and plan.rates_per_sample)
    ):
        network = network.with_rates(rate_rows[0])  # one set, shared by every sample
        rate_rows = None
    release_if_near_limit()  # before compiling: a process near its mapping limit
    procs = Processes.of(distributed)
    devices = _devices(devices)
    if store is not None:
        store = os.fspath(store)
        if chunk_size is None and resume:  # resume in the store's chunks
            chunk_size = _stored_chunk_size(store)
    elif resume:
        raise ValueError("resume=True needs a store (store=path) to resume from.")

    options = dict(
        solver=solver,
        lanes=lanes,
        chunk_size=chunk_size,
        workers=workers,
        devices=devices,
        exact_inputs=exact_inputs,
    )

    def make_plan(**changed):
        return plan_batch(
            network,
            n,
            **{**options, **changed},
            rates=rate_rows,
            n_saved=n_times * n_values,
            resumable=store is not None,
        )

    if plan is None:
        plan = make_plan()
        if procs.many and chunk_size is None and plan.chunk_size * procs.count > n:
            # every process gets a share of the batch
            plan = make_plan(chunk_size=max(1, -(-n // procs.count)))
    system, smap = build_system(network, plan.exact_inputs, plan.common_decay)
    if given_plan:
        _check_plan(plan, network, system, rate_rows, **options)
    state_row = smap.state_row()
    n_state = system.n_state
    if save == "outputs":
        pos_net, neg_net = (
            np.asarray(network.output_pos),
            np.asarray(network.output_neg),
        )
    else:
        pos_net, neg_net = (
            np.arange(network.n_species),
            -np.ones(network.n_species, np.int64),
        )

    def to_rows(idx):
        r = np.where(idx >= 0, state_row[np.maximum(idx, 0)], -1)
        return np.where(r >= 0, r, n_state)  # row n_state of the extended state: 0

    saving = L.Saving(
        host_array(np.zeros(0), dtype) if ts is None else ts,
        host_array(to_rows(pos_net), np.int32),
        host_array(to_rows(neg_net), np.int32),
    )
    ctl = L.Controls(
        t1_arr,
        host_array(rtol, dtype),
        host_array(atol, dtype),
        host_array(max_steps, np.int32),
        host_array(steady_tol, dtype),
    )
    forcing = Forcing.of(smap, dtype, plan.common_decay) if smap.exact else None
    engine = _Engine(
        plan=plan,
        network=network,
        system=system,
        smap=smap,
        saving=saving,
        ctl=ctl,
        forcing=forcing,
        offset=host_array(offset, dtype),
        stop_when_steady=stop_when_steady,
        x=x,
        base=base,
        rate_rows=rate_rows,
        ts=ts,
        save=save,
        keep_states=keep_states,
        dtype=dtype,
        # segments: for the progress bar, and so that an interrupt is prompt
        segment=_Segments(progress or store is not None),
    )
    chunk = plan.chunk_size
    n_chunks = -(-n // chunk)
    order = list(range(n_chunks))

    st = None
    done = np.zeros(n_chunks, bool)
    if store is not None or procs.many:
        fingerprint = fingerprint_of(
            network,
            inputs=None if x.shape[1] == 0 else x,
            y0=base,
            rates=rate_rows,
            ts=ts,
            options={
                "t1": float(t1_arr),
                "save": save,
                "keep_states": bool(keep_states),
                "rtol": float(rtol),
                "atol": float(atol),
                "max_steps": int(max_steps),
                "stop_when_steady": bool(stop_when_steady),
                "steady_tol": float(steady_tol),
                "offset": float(offset),
                "stepper": plan.stepper,
                "exact_inputs": bool(plan.exact_inputs),
                "dtype": jnp.dtype(dtype).name,
            },
        )
        procs.check_same(
            digest(np.frombuffer(repr(sorted(fingerprint.items())).encode(), np.uint8))
        )
        if store is not None:
            st = _open_store(store, fingerprint, n, chunk, resume, procs)
            for k in st.done():
                if k < n_chunks:
                    done[k] = True
            done = procs.broadcast(done)  # every process the same list
    todo = [k for k in order if not done[k]]
    mine = procs.mine(todo)
    rows = [min(chunk, n - k * chunk) for k in order]

    parts: dict[int, SimulationResult] = {}
    if procs.many:
        total, initial = sum(rows[k] for k in mine), 0
    else:
        total, initial = n, sum(rows[k] for k in order if done[k])
    with Progress(
        total, "simulating", enabled=progress, unit="sample", initial=initial
    ) as bar:
        for k in mine:
            res = engine.run(k * chunk, k * chunk + rows[k], bar if progress else None)
            if st is not None:
                st.write(k, res)
            parts[k] = res
    if procs.many:
        if st is not None:
            procs.barrier("jaxcrn: every chunk is in the store")
            chunks = [parts[k] if k in parts else st.read(k) for k in order]
        else:
            if not parts:  # no chunk of its own: one gives the layout
                parts[0] = engine.run(0, rows[0], None)
            chunks = procs.gather(parts, n_chunks, chunk, n)
    else:
        chunks = [parts[k] if k in parts else st.read(k) for k in order]  # type: ignore[union-attr]
    if len(chunks) == 1:
        return chunks[0]
    return jax.tree_util.tree_map(lambda *a: np.concatenate(a, axis=0), *chunks)


def _check_plan(plan, network, system, rate_rows, **options) -> None:
    """A plan passed to `simulate_batch` checked against the call (`system`: the
    one built for it)."""
    given = [k for k, v in options.items() if v is not None]
    if given:
        raise ValueError(
            f"{', '.join(given)} cannot be passed with plan=: the plan decides "
            f"{'them' if len(given) > 1 else 'it'}; pass them to plan_batch instead."
        )
    if plan.layout != network.form or plan.n_state != system.n_state:
        raise ValueError(
            f"the plan is for another network ({plan.layout} layout, "
            f"{plan.n_state} state rows; this one: {network.form}, "
            f"{system.n_state}); make it with plan_batch(network, ...)."
        )
    if plan.exact_inputs and plan.common_decay and rate_rows is not None:
        species, rxns = free_decay_split(network)
        if not np.isfinite(common_decay(network, species, rxns, rate_rows)).all():
            raise ValueError(
                "the plan solves the inputs exactly at one decay rate per sample, "
                "but these rate sets decay them at different rates; make the plan "
                "with plan_batch(network, n, rates=rates)."
            )


def _devices(devices):
    """The devices to run on: as given (each one this process's), or, in a
    multi-process run, this process's own (the plan's defaults from them)."""
    if devices is None:
        if jax.process_count() == 1:
            return None
        local = jax.local_devices()
        return local if local[0].platform != "cpu" else local[:1]
    devs = tuple(devices)
    here = jax.process_index()
    for d in devs:
        if not isinstance(d, jax.Device):
            raise TypeError(
                f"devices must be JAX devices (e.g. jax.devices()), got {d!r}."
            )
        if d.process_index != here:
            raise ValueError(
                f"device {d} belongs to process {d.process_index}, not to this "
                f"process ({here}); pass jax.local_devices() or leave devices=None."
            )
    return devs


def _stored_chunk_size(path: str) -> int | None:
    """The chunk size of the store at `path`, if it holds a run."""
    meta = os.path.join(path, META)
    if not os.path.isfile(meta):
        return None
    try:
        with open(meta, encoding="utf-8") as f:
            value = json.load(f).get("chunk_size")
    except (OSError, ValueError, AttributeError):
        return None  # Store says what is wrong with it
    return value if isinstance(value, int) and value > 0 else None


def _open_store(path, fingerprint, n, chunk, resume, procs: Processes) -> Store:
    """Open (or create) the store: process 0 first, the others once it exists; an
    error on process 0 stops every process."""
    if not procs.many:
        return Store(path, fingerprint, n, chunk, resume=resume)
    error: BaseException | None = None
    st = None
    if procs.index == 0:
        try:
            st = Store(path, fingerprint, n, chunk, resume=resume)
        except BaseException as e:  # noqa: BLE001 - re-raised below
            error = e
    ok = procs.broadcast(np.asarray([error is None], np.int32))
    if error is not None:
        raise error
    if not bool(ok[0]):
        raise RuntimeError(
            f"process 0 could not open the store {path} (its error says why)."
        )
    if procs.index != 0:
        st = Store(
            path, fingerprint, n, chunk, resume=True, process=procs.index, create=False
        )
    assert st is not None
    return st


class _Engine:
    """Everything that one chunk's simulation needs, the static parts placed once
    on every device."""

    def __init__(
        self,
        *,
        plan,
        network,
        system,
        smap,
        saving,
        ctl,
        forcing,
        offset,
        stop_when_steady,
        x,
        base,
        rate_rows,
        ts,
        save,
        keep_states,
        dtype,
        segment,
    ):
        self.plan = plan
        self.network = network
        self.smap = smap
        self.saving = saving
        self.x, self.base, self.rate_rows = x, base, rate_rows
        self.ts, self.save, self.keep_states, self.dtype = ts, save, keep_states, dtype
        self.stop_when_steady = stop_when_steady
        self.segment = segment
        rows = host_array(smap.rows, np.int32)
        static = (network, forcing, rows, offset, system, saving, ctl)
        self.on = {d: _place(static, d) for d in plan.device_objects}

    def run(self, start: int, stop: int, bar) -> SimulationResult:
        """Samples `[start, stop)` (at most one chunk) as a `SimulationResult`."""
        plan = self.plan
        workers = plan.workers
        per = plan.share_size
        devs = plan.device_objects
        m = stop - start
        dtype = self.dtype
        # the samples split evenly over the workers, each share padded to `per`
        # rows by repeating its last sample (padding rows end at once)
        q = -(-m // workers)
        real_rows = [max(0, min(q, m - i * q)) for i in range(workers)]
        pick = np.concatenate(
            [
                start + i * q + np.minimum(np.arange(per), max(r - 1, 0))
                for i, r in enumerate(real_rows)
            ]
        )
        pick = np.minimum(pick, stop - 1)

        def rows_of(a):
            if a is None:
                return None
            if a.shape[0] == 1:
                return np.repeat(a, per * workers, axis=0)
            return a[pick]

        xc, bc, rc = rows_of(self.x), rows_of(self.base), rows_of(self.rate_rows)
        results = [None] * workers
        errors: list[BaseException] = []
        halt = threading.Event()

        def go(i):
            try:
                dev = devs[i % len(devs)]
                network, forcing, rows, off, system, saving, ctl = self.on[dev]
                sl = slice(i * per, (i + 1) * per)

                def put(a):
                    return (
                        None
                        if a is None
                        else jax.device_put(np.asarray(a[sl], dtype), dev)
                    )

                share = _Share(
                    plan,
                    system,
                    self.smap,
                    saving,
                    ctl,
                    self.stop_when_steady,
                    bar,
                    self.segment,
                    halt,
                )
                real = real_rows[i]
                out = share(
                    network, forcing, rows, put(xc), put(bc), put(rc), off, real
                )
                results[i] = jax.tree_util.tree_map(np.asarray, out)
            except BaseException as e:  # re-raised in the caller's thread
                errors.append(e)

        if workers == 1:
            go(0)
        else:
            threads = [threading.Thread(target=go, args=(i,)) for i in range(workers)]
            for th in threads:
                th.start()
            try:
                for th in threads:
                    th.join()
            except BaseException:  # KeyboardInterrupt: stop every worker first
                halt.set()
                for th in threads:
                    th.join()
                raise
        if errors:
            raise errors[0]
        results = [  # each share's real rows
            jax.tree_util.tree_map(lambda a, r=r: a[:r], out)
            for out, r in zip(results, real_rows, strict=True)
        ]
        return _assemble(
            results,
            m,
            self.network,
            self.smap,
            self.saving,
            self.ts,
            self.save,
            self.keep_states,
            dtype,
        )


def _place(tree, device):
    """`tree` with every array leaf on `device`: leaves already there are kept as
    they are (a transfer call per leaf costs more than the check), the others are
    committed to it."""

    def put(a):
        if not eqx.is_array(a):
            return a
        if isinstance(a, jax.Array) and a.devices() == {device}:
            return a
        return jax.device_put(a, device)

    return jax.tree_util.tree_map(put, tree)


def _assemble(results, m, network, smap, saving, ts, save, keep_states, dtype):
    """One chunk's `SimulationResult` (NumPy, network order) from the shares'
    real rows (`m` in all)."""

    def cat(i):
        return np.concatenate([r[i] for r in results], axis=0)

    y0_net = cat(0)
    rec = [r[1] for r in results]
    y_state = np.concatenate([r.y for r in rec], axis=0)  # (m, state)
    t_final = np.concatenate([r.t for r in rec])
    status = np.concatenate([r.status for r in rec])
    steps = np.concatenate([r.steps for r in rec])
    rejected = np.concatenate([r.rejected for r in rec])
    steady = cat(2)
    t_steady = cat(3)
    saved = cat(4)
    decay = cat(5)
    ok = status == Status.OK
    n_species = network.n_species
    y_full = np.zeros((m, n_species), y_state.dtype)
    y_full[:, smap.rows] = y_state
    if smap.exact:
        d = smap.decay_species
        y_full[:, d] = y0_net[:, d] * np.exp(-decay * t_final[:, None])
    y_full = np.where(ok[:, None], y_full, np.nan)
    out_final = _read(network, y_full)
    ys = None
    if ts is None:
        t_out = t_final[:, None]
        outputs = out_final[:, None, :]
        if save == "species":
            ys = y_full[:, None, :]
    else:
        t_out = np.broadcast_to(np.asarray(ts), (m, ts.shape[0]))
        if save == "species":
            if smap.exact:
                d = smap.decay_species
                saved = saved.copy()
                saved[:, :, d] = y0_net[:, None, d] * np.exp(
                    -decay[:, None, :] * np.asarray(ts)[None, :, None]
                )
            ys = saved
            outputs = _read(network, saved)
        else:
            outputs = saved
    return SimulationResult(
        ts=t_out,
        ys=ys,
        outputs=outputs,
        y_final=y_full if keep_states or ys is not None else y_full[:, :0],
        outputs_final=out_final,
        t_final=t_final,
        status=status,
        converged=ok & steady,
        t_converged=np.where(ok & steady, t_steady, np.inf),
        num_steps=steps - rejected,
        num_rejected=rejected,
        species_names=network.species,
        output_names=network.output_names,
    )


def _read(network, y):
    pos = np.asarray(network.output_pos, np.int64)
    neg = np.asarray(network.output_neg, np.int64)
    out = y[..., pos]
    if (neg >= 0).any():
        out = out - np.where(neg >= 0, y[..., np.maximum(neg, 0)], 0.0)
    return out
