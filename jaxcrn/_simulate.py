"""Simulation: `simulate` (one sample, vmap-able), `simulate_batch` (chunked batches),
and convergence-time measures computed on device for whole batches."""

import dataclasses
import enum
import math
import warnings

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int, Real

from ._compile import MassActionNetwork
from ._progress import Progress
from ._solver import Rodas5P


__all__ = [
    "ConvergenceTimes",
    "SimulationResult",
    "Status",
    "convergence_times",
    "simulate",
    "simulate_batch",
]


class Status(enum.IntEnum):
    """Per-sample outcome of a solve (`SimulationResult.status`)."""

    OK = 0
    MAX_STEPS = 1  # the solver ran out of steps before t1
    NONFINITE = 2  # NaN or inf in the state (e.g. a negative single-rail input)
    FAILED = 3  # any other solver failure

    def message(self) -> str:
        return {
            Status.OK: "ok",
            Status.MAX_STEPS: "ran out of solver steps (increase max_steps, or "
            "check that the CRN is not too stiff for the solver)",
            Status.NONFINITE: "produced NaN or inf (check the inputs and initial "
            "concentrations: concentrations must be finite and >= 0)",
            Status.FAILED: "the solver failed",
        }[self]


_Arr = Array | np.ndarray  # device arrays, or NumPy arrays from simulate_batch


class SimulationResult(eqx.Module):
    """The result of `simulate` (one sample) or `simulate_batch` (leading batch axis).

    Attributes:
        ts: saved times, shape `(times,)`.
        ys: states at `ts`, shape `(times, species)`; None when not saved. After an
            early stop, times past `t_final` hold the final (steady) state.
        outputs: output values at `ts`, shape `(times, outputs)`.
        y_final: the state where integration ended, shape `(species,)`; NaN when
            `status` is not OK.
        outputs_final: outputs of `y_final`, shape `(outputs,)`; NaN when not OK.
        t_final: where integration ended: `t1`, or the early-stop time.
        status: a `Status` code (0 = OK).
        converged: True when `status` is OK and the state is steady at `t_final`:
            `max |dy/dt| <= steady_tol`.
        t_converged: the first time from which `max |dy/dt| <= steady_tol` held:
            the early-stop time with `stop_when_steady`, otherwise the first saved
            time from which it held at every later saved time (resolution: the
            spacing of `ts`; `t_final` when no states were saved). `inf` when never.
        num_steps: accepted solver steps.
        num_rejected: rejected solver steps.
    """

    ts: Float[_Arr, "*batch times"]
    ys: Float[_Arr, "*batch times species"] | None
    outputs: Float[_Arr, "*batch times outputs"]
    y_final: Float[_Arr, "*batch species"]
    outputs_final: Float[_Arr, "*batch outputs"]
    t_final: Float[_Arr, "*batch"]
    status: Int[_Arr, "*batch"]
    converged: Bool[_Arr, "*batch"]
    t_converged: Float[_Arr, "*batch"]
    num_steps: Int[_Arr, "*batch"]
    num_rejected: Int[_Arr, "*batch"]

    @property
    def ok(self) -> Bool[Array, "*batch"]:
        return self.status == Status.OK

    def summary(self) -> str:
        """One line: how many samples were ok / converged, step counts."""
        status = np.atleast_1d(np.asarray(self.status))
        conv = np.atleast_1d(np.asarray(self.converged))
        steps = np.atleast_1d(np.asarray(self.num_steps))
        parts = [f"{conv.sum()}/{conv.size} converged"]
        for s in Status:
            k = int((status == s).sum())
            if s != Status.OK and k:
                parts.append(f"{k} {s.name.lower()}")
        parts.append(f"steps median {np.median(steps):.0f}, max {steps.max()}")
        return ", ".join(parts)


def _warn_tolerance(rtol, dtype) -> None:
    """Warn when `rtol` is below what `dtype` can resolve: the step-size controller
    then chases round-off and takes 10-100x more steps for no accuracy."""
    try:
        rtol = float(rtol)
    except TypeError:  # traced
        return
    eps = float(jnp.finfo(dtype).eps)
    if rtol < 4 * eps:
        warnings.warn(
            f"rtol={rtol:g} is below 4x the {jnp.dtype(dtype).name} machine epsilon "
            f"({eps:.2g}): the solver will take far more steps without gaining "
            "accuracy. Enable float64 with jax.config.update('jax_enable_x64', True) "
            "before compiling the network, or loosen rtol.",
            stacklevel=3,
        )


def _status_from(result, y_final) -> Int[Array, ""]:
    ok = diffrax.is_okay(result)
    status = jnp.where(
        ok,
        Status.OK,
        jnp.where(
            result == diffrax.RESULTS.max_steps_reached, Status.MAX_STEPS, Status.FAILED
        ),
    )
    finite = jnp.all(jnp.isfinite(y_final))
    return jnp.where(finite, status, Status.NONFINITE).astype(jnp.int32)


def _resolve_ts(saveat, t1, dtype) -> Float[Array, " times"] | None:
    if saveat is None:
        return None
    if isinstance(saveat, int) and not isinstance(saveat, bool):
        if saveat < 2:
            raise ValueError(
                f"saveat={saveat}: an integer saveat is a number of evenly spaced "
                "save times including 0 and t1, so it must be >= 2."
            )
        return jnp.linspace(0.0, 1.0, saveat, dtype=dtype) * t1
    ts = jnp.asarray(saveat, dtype)
    if ts.ndim != 1 or ts.shape[0] == 0:
        raise ValueError(
            f"saveat must be None, an int, or a 1-D array of times; got shape "
            f"{ts.shape}."
        )
    return ts


@eqx.filter_jit
def simulate(
    network: MassActionNetwork,
    y0: Float[ArrayLike, " species"],
    t1: Real[ArrayLike, ""],
    *,
    solver: diffrax.AbstractSolver | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    max_steps: int = 16_384,
    saveat: int | Float[ArrayLike, " times"] | None = None,
    dt0: float | None = None,
    stop_when_steady: bool = False,
    steady_tol: float = 1e-6,
    save_species: bool = True,
    adjoint: diffrax.AbstractAdjoint | None = None,
) -> SimulationResult:
    """Integrate mass-action kinetics from t=0 to `t1` for one sample.

    Works under `jax.vmap` (a batch of `y0`, e.g. `jax.vmap(simulate, in_axes=(None,
    0, None))`) and `jax.grad` (with respect to `y0` and `network.rates`). A sample
    that fails (out of steps, NaN) is flagged in `status`/`converged` and never
    raises, so it cannot abort the rest of a batch.

    Arguments:
        network: the compiled network.
        y0: initial concentrations, shape `(species,)`, all finite and >= 0 (see
            `network.initial_state(x)` to build it from an input vector).
        t1: end time. Pass an array: Python floats are static and recompile.
        solver: any diffrax solver; default `Rodas5P()` (stiff, uses the network's
            structured linear solver). `diffrax.Tsit5()` is faster for non-stiff
            networks.
        rtol, atol: step-size tolerances; below 1e-8 needs float64.
        max_steps: solver steps before giving up (status MAX_STEPS).
        saveat: None (save the final state only), an int `n` (n evenly spaced times
            from 0 to t1), or an array of times.
        dt0: initial step; None lets diffrax choose.
        stop_when_steady: end integration as soon as `max |dy/dt| <= steady_tol`
            (a diffrax event), so `t1` is only an upper bound.
        steady_tol: threshold on `max |dy/dt|` for steady state.
        save_species: save whole states at `ts` (else only the outputs).
        adjoint: diffrax adjoint for gradients (default: recursive checkpointing).

    Returns:
        A `SimulationResult`.

    Example:
        >>> import jax.numpy as jnp
        >>> from jaxcrn import compile_crn, parse_crn, simulate
        >>> net = compile_crn(parse_crn("A -> B\\ninit A = 1"))
        >>> res = simulate(net, net.y_init, jnp.asarray(2.0))
        >>> round(float(res.y_final[0]), 6)  # exp(-2)
        0.135335
    """
    if not isinstance(network, MassActionNetwork):
        raise TypeError(
            f"simulate expects a MassActionNetwork (see compile_crn), got "
            f"{type(network).__name__}."
        )
    dtype = network.y_init.dtype
    y0 = jnp.asarray(y0)
    if not jnp.issubdtype(y0.dtype, jnp.floating):
        y0 = y0.astype(dtype)
    if y0.shape != (network.n_species,):
        raise ValueError(
            f"y0 has shape {y0.shape} but the network has {network.n_species} species;"
            " for a batch use jax.vmap(simulate, in_axes=(None, 0, None)) or "
            "simulate_batch."
        )
    dtype = y0.dtype
    y0 = eqx.error_if(
        y0,
        jnp.any(y0 < 0),
        "y0 has a negative concentration; concentrations must be >= 0.",
    )
    _warn_tolerance(rtol, dtype)
    t1 = jnp.asarray(t1, dtype)
    solver = Rodas5P() if solver is None else solver
    ts = _resolve_ts(saveat, t1, dtype)

    def save_outputs(t, y, args):
        return network.read_outputs(y)

    # BacksolveAdjoint takes neither `subs` nor `fn`: one flat SaveAt (ts, then t1)
    backsolve = isinstance(adjoint, diffrax.BacksolveAdjoint)
    if backsolve and stop_when_steady:
        raise ValueError(
            "stop_when_steady=True cannot be used with diffrax.BacksolveAdjoint "
            "(diffrax's backsolve adjoint takes no events); use the default adjoint."
        )
    subs = [diffrax.SubSaveAt(t1=True)]
    if ts is not None:
        subs.append(diffrax.SubSaveAt(ts=ts))
        if not save_species and not backsolve:
            subs[-1] = diffrax.SubSaveAt(ts=ts, fn=save_outputs)
    saveat_obj = (
        diffrax.SaveAt(t1=True, ts=ts) if backsolve else diffrax.SaveAt(subs=subs)
    )

    event = None
    if stop_when_steady:

        def steady(t, y, args, **kwargs):
            return jnp.max(jnp.abs(network(t, y, None))) <= steady_tol

        event = diffrax.Event(steady)

    controller = diffrax.PIDController(rtol=rtol, atol=atol)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(network),
        solver,
        jnp.zeros((), dtype),
        t1,
        dt0,
        y0,
        saveat=saveat_obj,
        stepsize_controller=controller,
        max_steps=max_steps,
        event=event,
        throw=False,
        adjoint=diffrax.RecursiveCheckpointAdjoint() if adjoint is None else adjoint,
    )
    assert sol.ys is not None and sol.ts is not None
    sol_ys, sol_ts = sol.ys, sol.ts
    if backsolve:  # the flat SaveAt's rows: ts, then t1
        sol_ys, sol_ts = (sol_ys[-1:], sol_ys[:-1]), (sol_ts[-1:], sol_ts[:-1])
        if ts is not None and not save_species:
            sol_ys = (sol_ys[0], network.read_outputs(sol_ys[1]))
    y_final = sol_ys[0][-1]
    t_final = sol_ts[0][-1]
    status = _status_from(sol.result, y_final)
    ok = status == Status.OK
    y_final = jnp.where(ok, y_final, jnp.nan)
    outputs_final = network.read_outputs(y_final)
    rate_final = jnp.max(jnp.abs(network(t_final, y_final, None)), initial=0.0)
    steady_final = rate_final <= steady_tol
    converged = ok & steady_final

    ys = None
    t_conv = jnp.where(converged, t_final, jnp.inf)
    if ts is None:
        ts_out = t_final[None]
        outputs = outputs_final[None]
        if save_species:
            ys = y_final[None]
    else:
        after = ts > t_final  # only non-empty after an early stop (or failure)
        saved = sol_ys[1]
        ts_out = ts
        if save_species:
            ys = jnp.where(after[:, None], y_final[None, :], saved)
            outputs = network.read_outputs(ys)
            if not stop_when_steady:
                rates = jax.vmap(
                    lambda y: jnp.max(jnp.abs(network(0.0, y, None)), initial=0.0)
                )(ys)
                steady = rates <= steady_tol
                # first saved index from which every later saved state is steady
                tail = jnp.flip(jnp.cumprod(jnp.flip(steady.astype(jnp.int32)))) > 0
                t_conv = jnp.where(tail[-1] & converged, ts[jnp.argmax(tail)], jnp.inf)
        else:
            outputs = jnp.where(after[:, None], outputs_final[None, :], saved)
        outputs = jnp.where(ok, outputs, jnp.nan)
    stats = sol.stats
    return SimulationResult(
        ts=ts_out,
        ys=ys,
        outputs=outputs,
        y_final=y_final,
        outputs_final=outputs_final,
        t_final=t_final,
        status=status,
        converged=converged,
        t_converged=t_conv.astype(dtype),
        num_steps=jnp.asarray(stats["num_accepted_steps"], jnp.int32),
        num_rejected=jnp.asarray(stats["num_rejected_steps"], jnp.int32),
    )


# ---------------------------------------------------------------------------------
# Convergence measures.


class ConvergenceTimes(eqx.Module):
    """Per-sample convergence times of the outputs, computed from saved outputs.

    Attributes:
        abs_time: per output, the time from which `|y(t) - y_final| <= eps` holds.
        rel_time: per output, the time from which `|y(t) - y_final| <= rtol *
            |y_final|` holds (an output whose final value is 0 uses `eps` instead).
        frac_time: per output, the time from which the output has covered at least
            `frac` of its way from `y(0)` to `y_final` and stays there (the paper's
            "90% completion" for `frac=0.9`).
        all_abs_time, all_rel_time, all_frac_time: the maximum over the outputs.
        argmax_time: the time from which the argmax of the outputs equals the final
            argmax.

    A bound that holds only at the last saved time gives `inf` (not settled within
    the simulated time), since the final value trivially satisfies it.

    Time resolution: all times are measured on the saved grid `ts`. `abs`, `rel`
    and `frac` times are refined by linear interpolation of the error between the
    last saved time that violates the bound and the next one (exact when the error
    is linear between saves; otherwise within one grid spacing). `argmax_time` is
    the first saved time of the final stretch (resolution: one grid spacing). A
    sample whose error bound already holds at `ts[0]` gets `ts[0]`.
    """

    abs_time: Float[Array, "*batch outputs"]
    rel_time: Float[Array, "*batch outputs"]
    frac_time: Float[Array, "*batch outputs"]
    argmax_time: Float[Array, "*batch"]

    @property
    def all_abs_time(self):
        return jnp.max(self.abs_time, axis=-1)

    @property
    def all_rel_time(self):
        return jnp.max(self.rel_time, axis=-1)

    @property
    def all_frac_time(self):
        return jnp.max(self.frac_time, axis=-1)


def _settling_time(ts, err, tol):
    """First time after which err <= tol for good (err: (times, outputs))."""
    bad = err > tol  # (times, outputs)
    n = ts.shape[0]
    idx = jnp.arange(n)
    last_bad = jnp.max(jnp.where(bad, idx[:, None], -1), axis=0)  # (outputs,)
    k = jnp.clip(last_bad + 1, 0, n - 1)
    kb = jnp.clip(last_bad, 0, n - 1)
    e0 = jnp.take_along_axis(err, kb[None, :], axis=0)[0] - tol
    e1 = jnp.take_along_axis(err, k[None, :], axis=0)[0] - tol
    t0, t1 = ts[kb], ts[k]
    denom = jnp.where(e0 - e1 > 0, e0 - e1, 1.0)
    frac = jnp.clip(jnp.where(e0 - e1 > 0, e0 / denom, 1.0), 0.0, 1.0)
    t_interp = t0 + frac * (t1 - t0)
    never_bad = last_bad < 0
    # holding only at the last saved time (often the final value itself) is not
    # settling: report inf ("not settled within the saved times")
    always_bad = last_bad >= n - 2
    return jnp.where(never_bad, ts[0], jnp.where(always_bad, jnp.inf, t_interp))


def convergence_times(
    ts: Float[ArrayLike, " times"],
    outputs: Float[ArrayLike, "times outputs"],
    final: Float[ArrayLike, " outputs"] | None = None,
    *,
    eps: float | Float[ArrayLike, ""] = 1e-3,
    rtol: float | Float[ArrayLike, ""] = 1e-2,
    frac: float | Float[ArrayLike, ""] = 0.9,
) -> ConvergenceTimes:
    """Convergence times of one sample's outputs (vmap it for a batch).

    Arguments:
        ts: saved times, increasing.
        outputs: outputs at `ts`, shape `(times, outputs)`.
        final: the values converged to; default the last saved outputs.
        eps: absolute tolerance for `abs_time`.
        rtol: relative tolerance for `rel_time`.
        frac: completion fraction for `frac_time`.

    Example:
        >>> import jax.numpy as jnp
        >>> ts = jnp.linspace(0.0, 10.0, 1001)
        >>> out = (1 - jnp.exp(-ts))[:, None]
        >>> ct = convergence_times(ts, out, jnp.array([1.0]), eps=1e-2)
        >>> round(float(ct.abs_time[0]), 2)  # log(100)
        4.61
    """
    ts = jnp.asarray(ts)
    outputs = jnp.asarray(outputs)
    final = outputs[-1] if final is None else jnp.asarray(final, outputs.dtype)
    err = jnp.abs(outputs - final[None, :])
    abs_time = _settling_time(ts, err, eps)
    scale = jnp.where(final != 0, rtol * jnp.abs(final), eps)
    rel_time = _settling_time(ts, err / scale[None, :], 1.0)
    travel = jnp.abs(final - outputs[0])
    frac_scale = jnp.where(travel > 0, (1 - frac) * travel, eps)
    frac_time = _settling_time(ts, err / frac_scale[None, :], 1.0)
    am = jnp.argmax(outputs, axis=1)
    am_final = jnp.argmax(final)
    wrong = am != am_final
    n = ts.shape[0]
    last_wrong = jnp.max(jnp.where(wrong, jnp.arange(n), -1))
    argmax_time = jnp.where(
        last_wrong < 0,
        ts[0],
        jnp.where(last_wrong >= n - 1, jnp.inf, ts[jnp.clip(last_wrong + 1, 0, n - 1)]),
    )
    return ConvergenceTimes(abs_time, rel_time, frac_time, argmax_time)


# ---------------------------------------------------------------------------------
# Batches.


def _check_inputs(network: MassActionNetwork, inputs) -> np.ndarray:
    x = np.asarray(inputs, dtype=np.float64)
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
    return x


@eqx.filter_jit
def _simulate_chunk(network, xs, offset, t1, kwargs):
    y0 = jax.vmap(lambda x: network.initial_state(x, offset=offset))(xs)
    return jax.vmap(lambda y: simulate(network, y, t1, **kwargs))(y0)


# simulate_batch unrolls Rodas5P's stages for networks at least this large, or for
# batches at least this large: unrolled stages compile ~1 s (small networks) to ~3x
# slower but run 1.4x (MNIST) to 2.5x (IRIS, benchmarks/solvers.py) faster
UNROLL_MIN_SPECIES = 256
UNROLL_MIN_BATCH = 1000

# engine defaults per platform: on a CPU a few dozen lanes keep the working set in
# cache; on an accelerator a loop iteration costs about the same for 64 lanes as for
# thousands (kernel launches dominate), so a whole chunk runs side by side
DEFAULT_LANES = {"cpu": 64}
DEFAULT_CHUNK = {"cpu": 1024}
ACCELERATOR_LANES = 16_384


def default_lanes(platform: str | None = None) -> tuple[int, int]:
    """The `(lanes, chunk_size)` that `simulate_batch` uses on `platform`.

    `platform` is a JAX platform name (`"cpu"`, `"gpu"`, `"cuda"`, `"tpu"`, ...);
    default: `jax.default_backend()`.

    Example:
        >>> default_lanes("cpu")
        (64, 1024)
        >>> default_lanes("gpu")
        (16384, 16384)
    """
    platform = platform or jax.default_backend()
    return (
        DEFAULT_LANES.get(platform, ACCELERATOR_LANES),
        DEFAULT_CHUNK.get(platform, ACCELERATOR_LANES),
    )


@eqx.filter_jit
def _initial_states(network, xs, offset):
    return jax.vmap(lambda x: network.initial_state(x, offset=offset))(xs)


def simulate_batch(
    network: MassActionNetwork,
    inputs: Float[ArrayLike, "batch inputs"],
    t1: float | Real[ArrayLike, ""],
    *,
    solver: diffrax.AbstractSolver | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    max_steps: int = 16_384,
    saveat: int | Float[ArrayLike, " times"] | None = 201,
    stop_when_steady: bool = False,
    steady_tol: float = 1e-6,
    offset: float = 0.0,
    lanes: int | None = None,
    chunk_size: int | None = None,
    keep_states: bool = False,
    method: str = "auto",
    exact_inputs: bool | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> SimulationResult:
    """Simulate a batch of input vectors through the network.

    Three engines give the same answers to the solver tolerance:

    - `"layered"` (the default on a CPU for networks in the layered layout, i.e.
      every CRN compiled from a neural network): the state of `lanes` samples is
      one species-major array, each lane with its own time and adaptive step size;
      a lane that finishes (t1, or steady state with `stop_when_steady`) takes the
      next sample, so no sample waits for the slowest one. Runs its own Tsit5 and
      Rodas5P (see `solver`) and splits each chunk over `workers` threads.
    - `"lanes"` (the default otherwise, e.g. on a GPU): the same scheme with any
      diffrax adaptive solver, one sample per lane under `jax.vmap`.
    - `"vmap"`: `jax.vmap(simulate)` on chunks (lock-step; every option of
      `simulate`).

    Inputs are validated first: a non-finite value, or a negative value for a
    single-species input, raises `ValueError` naming the row and column. A sample
    whose solve fails is flagged in `status`/`converged` (its outputs are NaN) and
    never stops the others.

    Arguments:
        network: the compiled network.
        inputs: shape `(batch, inputs)`.
        t1: end time (an upper bound with `stop_when_steady`).
        solver: None (automatic), `Rodas5P()`, `diffrax.Tsit5()` or, with the
            `"lanes"`/`"vmap"` engines, any diffrax adaptive solver. Automatic: with
            the layered engine, Tsit5 for networks under 256 species, and any
            sample on which it detects stiffness (Hairer's test: 15 accepted steps in
            a row at the stability limit, far from t1) is re-run with Rodas5P;
            Rodas5P for larger networks. With the other engines, Rodas5P (stages
            unrolled for networks of 256+ species or batches of 1,000+ inputs).
        rtol, atol: step-size tolerances.
        max_steps: steps (accepted + rejected) per sample before giving up.
        saveat: outputs are saved at these times: an int `n` (n evenly spaced times
            from 0 to t1, the default 201), an array, or None (final values only).
        stop_when_steady: end each sample once `max |dy/dt| <= steady_tol`; the
            saved outputs after that time hold the final values.
        steady_tol: the steady-state threshold (also decides `converged`).
        offset: dual-rail offset added to both rails of every input.
        lanes: samples integrated side by side (per worker thread with the layered
            engine). Default: with the layered engine, 32 to 128 by network size
            (about 4,096 state values per lane array); otherwise 64 on a CPU,
            16,384 on a GPU or TPU (`default_lanes`).
        chunk_size: samples per engine call (bounds memory; progress is reported
            per chunk). Default: 1,024 on a CPU, 16,384 on a GPU or TPU.
        keep_states: also return the final state of every sample (`y_final`).
        method: `"auto"` (default), `"layered"`, `"lanes"` or `"vmap"`.
        exact_inputs: with the layered and lanes engines, solve the input layer
            exactly (its species decay as `X(0) exp(-k t)`; see `ForcedNetwork`).
            Default: when the network supports it (layered, inputs decaying at one
            common rate).
        workers: threads for the layered engine, each simulating an equal share of
            every chunk. Default: the number of CPU cores available.
        progress: draw a progress line on a terminal.

    Returns:
        A `SimulationResult` of NumPy arrays with a leading batch axis; `ys` is
        None, `ts` has shape `(batch, times)`. `t_converged` is the time of the
        accepted step from which `max |dy/dt| <= steady_tol` held for good.

    Example:
        >>> import numpy as np
        >>> from jaxcrn import compile_crn, parse_crn, simulate_batch
        >>> net = compile_crn(parse_crn("X -> Y\\ninput x = X\\noutput y = Y"))
        >>> res = simulate_batch(net, np.array([[1.0], [2.0]]), 30.0, progress=False)
        >>> np.round(res.outputs_final[:, 0], 6).tolist()
        [1.0, 2.0]
    """
    from ._engine import integrate_lanes

    method = _choose_method(network, method, solver)
    layered_method = _layered_solver(solver)
    if workers is None:
        workers = _cpu_count()
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}.")
    auto_lanes, auto_chunk = default_lanes()
    lanes_given = lanes
    lanes = auto_lanes if lanes is None else lanes
    chunk_size = auto_chunk if chunk_size is None else chunk_size
    if chunk_size < 1 or lanes < 1:
        raise ValueError(
            f"chunk_size and lanes must be >= 1, got {chunk_size} and {lanes}."
        )
    x = _check_inputs(network, inputs)
    n = x.shape[0]
    if n == 0:
        raise ValueError("inputs is empty: nothing to simulate.")
    dtype = network.y_init.dtype
    if method != "vmap":  # method="vmap" goes through simulate, which warns
        _warn_tolerance(rtol, dtype)
    t1 = jnp.asarray(t1, dtype)
    if not bool(t1 > 0):
        raise ValueError(f"t1 must be positive, got {float(t1)}.")
    off = jnp.asarray(offset, dtype)
    if solver is None and method != "layered":
        # worth it when run time dominates compile time
        solver = Rodas5P(
            unroll=network.n_species >= UNROLL_MIN_SPECIES or n >= UNROLL_MIN_BATCH
        )
    ts = _resolve_ts(saveat, t1, dtype)
    if method == "layered":
        from ._layered_engine import can_force

        supported = can_force(network)
    else:
        supported = method == "lanes" and network.supports_forcing()
    if exact_inputs is None:
        exact_inputs = supported
    elif exact_inputs and not supported:
        raise ValueError(
            "exact_inputs=True needs the layered or lanes engine and a layered "
            "network whose first wavefront decays at one common rate "
            "(compile_crn(..., form='layered'); equal rate constants on the input "
            "reactions) and holds no output."
        )
    if method == "layered":
        return _simulate_layered(
            network,
            x,
            t1,
            ts,
            off,
            solver_name=layered_method,
            rtol=rtol,
            atol=atol,
            max_steps=max_steps,
            stop_when_steady=stop_when_steady,
            steady_tol=steady_tol,
            lanes=lanes_given,
            chunk_size=chunk_size,
            keep_states=keep_states,
            forced=bool(exact_inputs),
            workers=workers,
            progress=progress,
        )
    chunk = min(chunk_size, n)
    parts = []
    with Progress(math.ceil(n / chunk), "simulating", enabled=progress) as bar:
        for start in range(0, n, chunk):
            xs = x[start : start + chunk]
            m = xs.shape[0]
            if m < chunk:  # same shape for every chunk: compile once
                xs = np.concatenate([xs, np.repeat(xs[-1:], chunk - m, axis=0)])
            xs = jnp.asarray(xs, dtype)
            if method == "vmap":
                kwargs = dict(
                    solver=solver,
                    rtol=rtol,
                    atol=atol,
                    max_steps=max_steps,
                    saveat=saveat,
                    stop_when_steady=stop_when_steady,
                    steady_tol=steady_tol,
                    save_species=False,
                )
                res = _simulate_chunk(network, xs, off, t1, kwargs)
                res = jax.tree_util.tree_map(lambda a: np.asarray(a)[:m], res)
                if not keep_states:
                    res = eqx.tree_at(lambda r: r.y_final, res, res.y_final[:, :0])
            else:
                y0s = _initial_states(network, xs, off)
                eng = integrate_lanes(
                    network,
                    y0s,
                    t1,
                    ts,
                    solver=solver,
                    rtol=rtol,
                    atol=atol,
                    max_steps=max_steps,
                    lanes=lanes,
                    steady_tol=steady_tol,
                    stop_when_steady=stop_when_steady,
                    keep_states=keep_states,
                    forced=bool(exact_inputs),
                )
                eng = jax.tree_util.tree_map(lambda a: np.asarray(a)[:m], eng)
                fields = {f.name: getattr(eng, f.name) for f in dataclasses.fields(eng)}
                res = _batch_result(fields, ts, np.asarray(y0s).dtype)
            parts.append(res)
            bar.update(1, extra=res.summary() if len(parts) == 1 else "")
    out = jax.tree_util.tree_map(lambda *a: np.concatenate(a, axis=0), *parts)
    return out


def _choose_method(network, method: str, solver) -> str:
    """The engine `simulate_batch(..., method=method, solver=solver)` runs:
    "layered", "lanes" or "vmap"; errors for an unknown or unusable method."""
    from ._layered_engine import layered_kinetics_for

    if method not in ("auto", "layered", "lanes", "vmap"):
        raise ValueError(
            f"method={method!r} is not one of 'auto', 'layered', 'lanes', 'vmap'."
        )
    layered_ok = layered_kinetics_for(network, False) is not None
    layered_method = _layered_solver(solver)
    if method == "auto":
        return (
            "layered"
            if layered_ok and layered_method and jax.default_backend() == "cpu"
            else "lanes"
        )
    if method == "layered" and not (layered_ok and layered_method):
        raise ValueError(
            "method='layered' needs a network in the aligned layered layout "
            "(compile_crn(crn, form='layered') of a feed-forward CRN, as every CRN "
            "compiled from a neural network) and solver None, Rodas5P() or "
            f"diffrax.Tsit5(); got form {network.form!r} and solver "
            f"{type(solver).__name__}. Use method='lanes' for other solvers."
        )
    return method


def engine_settings(
    network,
    batch: int,
    *,
    method: str = "auto",
    solver=None,
    lanes: int | None = None,
    chunk_size: int | None = None,
    workers: int | None = None,
    exact_inputs: bool | None = None,
) -> dict:
    """What `simulate_batch(network, x, ...)` runs a batch of `batch` samples with,
    for the same keyword arguments: `engine` ("layered", "lanes" or "vmap"),
    `lanes` (per worker thread with the layered engine; None with "vmap"),
    `chunk_size` (samples per engine call) and `workers` (threads). For benchmark
    records; nothing is compiled.

    Example:
        >>> from jaxcrn import compile_crn, parse_crn
        >>> from jaxcrn._simulate import engine_settings
        >>> net = compile_crn(parse_crn("X -> Y\\ninput x = X\\noutput y = Y"))
        >>> engine_settings(net, 10, method="lanes", lanes=4)
        {'engine': 'lanes', 'lanes': 4, 'chunk_size': 10, 'workers': 1}
    """
    from ._layered_engine import can_force, default_lanes_for, share_size

    engine = _choose_method(network, method, solver)
    auto_lanes, auto_chunk = default_lanes()
    chunk = max(1, min(chunk_size or auto_chunk, batch))
    if engine == "vmap":
        return dict(engine=engine, lanes=None, chunk_size=chunk, workers=1)
    if engine == "lanes":
        return dict(
            engine=engine,
            lanes=min(lanes or auto_lanes, chunk),
            chunk_size=chunk,
            workers=1,
        )
    workers = max(1, min(workers or _cpu_count(), chunk))
    forced = can_force(network) if exact_inputs is None else exact_inputs
    first = network.kinetics.waves[0].size if forced else 0
    per = share_size(chunk, workers)
    lanes = min(lanes or default_lanes_for(network.n_species - first), per)
    return dict(engine=engine, lanes=lanes, chunk_size=chunk, workers=workers)


def _cpu_count() -> int:
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _layered_solver(solver) -> str | None:
    """The layered engine's method for `solver`: "auto", "rodas5p", "tsit5", or
    None when it has no such method (then another engine runs)."""
    if solver is None:
        return "auto"
    if isinstance(solver, Rodas5P):
        return "rodas5p"
    if type(solver) is diffrax.Tsit5:
        return "tsit5"
    return None


# the layered engine's automatic solver: Tsit5 (with stiffness detection and Rodas5P
# re-runs) below this many species, Rodas5P from here on (benchmarks/solvers.py:
# the MNIST-14 CRNs are stiff, IRIS and virus are not)
AUTO_RODAS_MIN_SPECIES = 256


def _simulate_layered(
    network,
    x,
    t1,
    ts,
    off,
    *,
    solver_name,
    rtol,
    atol,
    max_steps,
    stop_when_steady,
    steady_tol,
    lanes,
    chunk_size,
    keep_states,
    forced,
    workers,
    progress,
) -> SimulationResult:
    from ._layered_engine import STIFF, run_layered

    dtype = network.y_init.dtype
    n = x.shape[0]
    first = solver_name
    if solver_name == "auto":
        first = "rodas5p" if network.n_species >= AUTO_RODAS_MIN_SPECIES else "tsit5"
    detect = solver_name == "auto" and first == "tsit5"

    def run(rows, method, detect_stiff, bar):
        out = []
        chunk = min(chunk_size, rows.shape[0])
        for start in range(0, rows.shape[0], chunk):
            xs = rows[start : start + chunk]
            m = xs.shape[0]
            if m < chunk:  # same shape for every chunk: compile once
                xs = np.concatenate([xs, np.repeat(xs[-1:], chunk - m, axis=0)])
            res = run_layered(
                network,
                xs,
                off,
                t1,
                ts,
                method=method,
                forced=forced,
                rtol=rtol,
                atol=atol,
                max_steps=max_steps,
                lanes=lanes,
                steady_tol=steady_tol,
                stop_when_steady=stop_when_steady,
                keep_states=keep_states,
                detect_stiff=detect_stiff,
                workers=workers,
            )
            out.append({k: (None if v is None else v[:m]) for k, v in res.items()})
            if bar is not None:
                bar.update(1)
        return {
            k: None if out[0][k] is None else np.concatenate([o[k] for o in out])
            for k in out[0]
        }

    n_chunks = math.ceil(n / min(chunk_size, n))
    with Progress(n_chunks, "simulating", enabled=progress) as bar:
        res = run(x, first, detect, bar)
    stiff = np.flatnonzero(res["status"] == STIFF)
    if stiff.size:
        # samples that Tsit5 found stiff: again from t = 0 with Rodas5P
        again = run(x[stiff], "rodas5p", False, None)
        for k, v in res.items():
            if v is not None:
                v[stiff] = again[k]
    return _batch_result(res, ts, np.dtype(dtype))


def _batch_result(res: dict, ts, dtype) -> SimulationResult:
    """A `SimulationResult` of NumPy arrays from an engine's per-sample fields."""
    m = res["t_final"].shape[0]
    t_out = (
        res["t_final"][:, None]
        if ts is None
        else np.broadcast_to(np.asarray(ts), (m, ts.shape[0]))
    )
    outputs = (
        res["outputs_final"][:, None, :] if res["outputs"] is None else res["outputs"]
    )
    ok = res["status"] == Status.OK
    steady = res["steady"]
    return SimulationResult(
        ts=t_out,
        ys=None,
        outputs=outputs,
        y_final=(
            res["y_final"] if res["y_final"] is not None else np.zeros((m, 0), dtype)
        ),
        outputs_final=res["outputs_final"],
        t_final=res["t_final"],
        status=res["status"],
        converged=ok & steady,
        t_converged=np.where(ok & steady, res["t_steady"], np.inf),
        num_steps=res["num_steps"],
        num_rejected=res["num_rejected"],
    )
