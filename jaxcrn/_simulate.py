"""Simulation of one sample: `simulate` (vmap-able, differentiable), the result type
shared with the batch engine (`SimulationResult`, `Status`), and convergence-time
measures computed on device."""

import enum
import os
import warnings
from collections.abc import Sequence

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int, Real

from ._network import MassActionNetwork, check_fits, check_real, real_array
from ._solvers import Rodas5P
from ._solvers._common import growth_step_limit, hairer_initial_step


__all__ = [
    "ConvergenceTimes",
    "SimulationResult",
    "Status",
    "ToleranceWarning",
    "convergence_times",
    "simulate",
]


class Status(enum.IntEnum):
    """Per-sample outcome of a solve (`SimulationResult.status`)."""

    OK = 0
    MAX_STEPS = 1  # the solver ran out of steps before t1
    NONFINITE = 2  # NaN or inf in the state (e.g. a negative single-rail input)
    FAILED = 3  # any other solver failure
    STIFF = 4  # an explicit method found the problem stiff (the batch engine then
    # continues the sample with an implicit one; a final result never has it)

    def message(self) -> str:
        return {
            Status.OK: "ok",
            Status.MAX_STEPS: "ran out of solver steps (increase max_steps, or "
            "check that the CRN is not too stiff for the solver)",
            Status.NONFINITE: "the state overflowed or became NaN (check the inputs, "
            "initial concentrations and rate constants: too large, or negative)",
            Status.FAILED: "the solver failed",
            Status.STIFF: "stiff for the explicit method (pass solver=None or "
            "Rodas5P() to let an implicit method take over)",
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
            the early-stop time with `stop_when_steady`; otherwise, from
            `simulate`, the first saved time from which it held at every later
            saved time (resolution: the spacing of `ts`; `t_final` when no states
            were saved), and from `simulate_batch` the end of the accepted solver
            step from which it held for good (resolution: the solver's steps,
            whatever was saved). `inf` when never.
        num_steps: accepted solver steps.
        num_rejected: rejected solver steps.
        species_names: the species, in state order (static; `network.species`).
        output_names: the outputs (static; `network.output_names`).
        class_names: one name per output when the outputs are class scores (static;
            empty unless set with `with_names`).

    Tables, files and plots: `to_dataframe`, `to_xarray`, `save`, `load`, and
    `jaxcrn.plot`.
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
    species_names: tuple[str, ...] = eqx.field(static=True, default=())
    output_names: tuple[str, ...] = eqx.field(static=True, default=())
    class_names: tuple[str, ...] = eqx.field(static=True, default=())

    @property
    def ok(self) -> Bool[Array, "*batch"]:
        return self.status == Status.OK

    def with_names(
        self,
        *,
        species: Sequence[str] | None = None,
        outputs: Sequence[str] | None = None,
        classes: Sequence[str] | None = None,
    ) -> "SimulationResult":
        """A copy with other names (None keeps a name list as it is).

        Example:
            >>> import jax.numpy as jnp
            >>> from jaxcrn import compile_crn, parse_crn, simulate
            >>> net = compile_crn(parse_crn("X -> Y\\ninit X = 1\\noutput y = Y"))
            >>> res = simulate(net, net.y_init, jnp.asarray(1.0))
            >>> res.species_names, res.output_names
            (('X', 'Y'), ('y',))
            >>> res.with_names(classes=["yes"]).class_names
            ('yes',)
        """
        from ._results import with_names

        return with_names(self, species, outputs, classes)

    def to_dataframe(
        self, kind: str = "trajectories", *, species: bool = True, outputs: bool = True
    ):
        """The result as a pandas DataFrame (pandas from the `tables` extra).

        `kind="trajectories"`: one row per sample and saved time, with columns
        `sample`, `time`, one per output, one per species (when states were saved)
        and `status`. `kind="final"`: one row per sample with `status`,
        `converged`, `t_final`, `t_converged`, `num_steps`, `num_rejected`, the
        final outputs and species, and `argmax` (plus `class` when `class_names`
        are set). `species=False` or `outputs=False` leaves those columns out.

        Example:
            >>> import numpy as np
            >>> from jaxcrn import compile_crn, parse_crn, simulate_batch
            >>> net = compile_crn(parse_crn("X -> Y\\ninput x = X\\noutput y = Y"))
            >>> res = simulate_batch(net, np.array([[1.0], [2.0]]), 10.0, saveat=3)
            >>> res.to_dataframe().round(4)
               sample  time       y status
            0       0   0.0  0.0000     ok
            1       0   5.0  0.9933     ok
            2       0  10.0  1.0000     ok
            3       1   0.0  0.0000     ok
            4       1   5.0  1.9865     ok
            5       1  10.0  1.9999     ok
        """
        from ._results import to_dataframe

        return to_dataframe(self, kind, species=species, outputs=outputs)

    def to_xarray(self):
        """The result as an `xarray.Dataset` with dimensions `sample` (for a
        batch), `time`, `species` and `output`, names as coordinates.

        Example:
            >>> import numpy as np
            >>> from jaxcrn import compile_crn, parse_crn, simulate_batch
            >>> net = compile_crn(parse_crn("X -> Y\\ninput x = X\\noutput y = Y"))
            >>> res = simulate_batch(net, np.array([[1.0], [2.0]]), 10.0, saveat=3)
            >>> ds = res.to_xarray()
            >>> [round(float(v), 4) for v in ds.outputs.sel(output="y", time=10.0)]
            [1.0, 1.9999]
        """
        from ._results import to_xarray

        return to_xarray(self)

    def save(self, path: "str | os.PathLike", *, overwrite: bool = False) -> None:
        """Write the result to an `.npz` file (no pickle; written atomically).

        Refuses to replace an existing file unless `overwrite`. Read it back with
        `SimulationResult.load`.

        Example:
            >>> import os, tempfile
            >>> import numpy as np
            >>> from jaxcrn import SimulationResult, compile_crn, parse_crn
            >>> from jaxcrn import simulate_batch
            >>> net = compile_crn(parse_crn("X -> Y\\ninput x = X\\noutput y = Y"))
            >>> res = simulate_batch(net, np.array([[1.0]]), 10.0, saveat=3)
            >>> path = os.path.join(tempfile.mkdtemp(), "run.npz")
            >>> res.save(path)
            >>> back = SimulationResult.load(path)
            >>> back.output_names, np.array_equal(back.outputs, res.outputs)
            (('y',), True)
        """
        from ._results import save

        save(self, path, overwrite=overwrite)

    @staticmethod
    def load(path: "str | os.PathLike") -> "SimulationResult":
        """Read a result written by `save` (NumPy arrays, names restored)."""
        from ._results import load

        return load(path)

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


def check_solve_args(
    *, rtol, atol, t1=None, ts=None, steady_tol=None, max_steps=None, offset=None,
    dt0=None,
) -> None:  # fmt: skip
    """A `ValueError` naming the argument and its value for tolerances, end time,
    save times, steady-state threshold, step budget, offset or first step that no
    solve can honour (each checked where it is concrete)."""
    checks = [
        ("rtol", rtol, lambda v: 0 < v < 1, "a relative tolerance in (0, 1)"),
        ("atol", atol, lambda v: v >= 0, "an absolute tolerance >= 0"),
        ("t1", t1, lambda v: v > 0, "a positive finite end time"),
        ("steady_tol", steady_tol, lambda v: v > 0, "a positive finite threshold"),
        ("offset", offset, lambda v: v >= 0, "a concentration >= 0"),
        ("dt0", dt0, lambda v: v > 0, "a positive finite first step"),
    ]
    for name, value, ok, what in checks:
        if value is None:
            continue
        v = real_array(name, value)
        if v is None:
            continue
        if v.ndim or not (np.isfinite(v) and ok(float(v))):
            shown = value if np.ndim(value) else float(v)
            raise ValueError(f"{name} must be {what}, got {shown!r}.")
    if max_steps is not None and (
        isinstance(max_steps, bool)
        or not isinstance(max_steps, int | np.integer)
        or not 1 <= max_steps <= np.iinfo(np.int32).max
    ):
        raise ValueError(
            f"max_steps must be an integer from 1 to {np.iinfo(np.int32).max}, got "
            f"{max_steps!r}."
        )
    if ts is not None:
        t = real_array("saveat", ts)
        end = None if t1 is None else real_array("t1", t1)
        if t is None:
            return
        bad = [
            (~np.isfinite(t), "not finite"),
            (t < 0, "before t = 0"),
            (np.r_[False, np.diff(t) < 0], "earlier than the time before it"),
        ]
        if end is not None and end.ndim == 0:
            bad.append((t > end, f"after t1 = {float(end):g}"))
        for mask, why in bad:
            if np.any(mask):
                i = int(np.argmax(mask))
                raise ValueError(
                    f"saveat[{i}] = {t[i]:g} is {why}: save times must be finite, "
                    "increasing and within [0, t1]."
                )


class ToleranceWarning(UserWarning):
    """The tolerances cannot give the accuracy they seem to promise (`rtol` below
    what the dtype resolves). `warnings.simplefilter("error",
    jaxcrn.ToleranceWarning)` makes it an error."""


def _warn_tolerance(rtol, dtype) -> None:
    """Warn when `rtol` is below what `dtype` can resolve: the step-size controller
    then chases round-off and takes 10-100x more steps for no accuracy."""
    try:
        rtol = float(rtol)
    except TypeError:  # traced
        return
    eps = float(jnp.finfo(dtype).eps)
    if rtol < 4 * eps:
        fix = (
            "loosen rtol"
            if jnp.dtype(dtype).itemsize >= 8
            else "enable float64 with jax.config.update('jax_enable_x64', True) "
            "before compiling the network, or loosen rtol"
        )
        warnings.warn(
            f"rtol={rtol:g} is below 4x the {jnp.dtype(dtype).name} machine epsilon "
            f"({eps:.2g}): the solver will take far more steps without gaining "
            f"accuracy; {fix}.",
            ToleranceWarning,
            stacklevel=3,
        )


def _status_from(result, y_final, rate_final=None) -> Int[Array, ""]:
    """The `Status` of a diffrax solve. A state whose rate of change is not finite
    (it overflowed: the solver rejects every step, then runs out of steps) is
    NONFINITE, not MAX_STEPS."""
    ok = diffrax.is_okay(result)
    status = jnp.where(
        ok,
        Status.OK,
        jnp.where(
            result == diffrax.RESULTS.max_steps_reached, Status.MAX_STEPS, Status.FAILED
        ),
    )
    finite = jnp.all(jnp.isfinite(y_final))
    if rate_final is not None:
        finite = finite & jnp.all(jnp.isfinite(rate_final))
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
    check_real("saveat", saveat)
    ts = jnp.asarray(saveat, dtype)
    if ts.ndim != 1 or ts.shape[0] == 0:
        raise ValueError(
            f"saveat must be None, an int, or a 1-D array of times; got shape "
            f"{ts.shape}."
        )
    return ts


class _GrowthLimited(diffrax.AbstractAdaptiveStepSizeController):
    """A PID controller whose steps keep `g h <= GROWTH_LIMIT`, `g` a bound on
    how fast catalysis makes a species below `atol / rtol` grow, at the step's
    start (see `AbstractKinetics.growth_rate`): a long step would miss that
    growth, which the error estimate cannot see below the tolerances."""

    inner: diffrax.PIDController
    network: MassActionNetwork

    rtol = property(lambda self: self.inner.rtol)
    atol = property(lambda self: self.inner.atol)
    norm = property(lambda self: self.inner.norm)

    def _cap(self, y):
        below = self.inner.atol / self.inner.rtol
        g = self.network.kinetics.growth_rate(y, self.network.rates, below)
        g = jax.lax.stop_gradient(g)
        return growth_step_limit(g)

    def wrap(self, direction):
        return _GrowthLimited(self.inner.wrap(direction), self.network)

    def init(self, terms, t0, t1, y0, dt0, args, func, error_order):
        t_next, state = self.inner.init(terms, t0, t1, y0, dt0, args, func, error_order)
        return jnp.minimum(t_next, t0 + self._cap(y0)), state

    def adapt_step_size(
        self, t0, t1, y0, y1_candidate, args, y_error, error_order, controller_state
    ):  # fmt: skip
        keep, t_next0, t_next1, jump, state, result = self.inner.adapt_step_size(
            t0, t1, y0, y1_candidate, args, y_error, error_order, controller_state
        )
        y = jnp.where(keep, y1_candidate, y0)
        t_next1 = jnp.minimum(t_next1, t_next0 + self._cap(y))
        return keep, t_next0, t_next1, jump, state, result


def _initial_step(network, y0, t1, rtol, atol):
    """Hairer's initial step for `simulate`, the batch engine's (0.01 where it is
    not finite: the solve then reports the non-finite start)."""
    h, _ = hairer_initial_step(
        lambda t, y: network(t[0], y[:, 0], None)[:, None],
        y0[:, None],
        jnp.zeros((1,), y0.dtype),
        t1,
        5,
        rtol,
        atol,
    )
    h = jax.lax.stop_gradient(h[0])
    return jnp.where(jnp.isfinite(h), h, jnp.asarray(0.01, h.dtype))


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
        t1: end time (a number or a 0-d array; a new value does not recompile).
        solver: any diffrax solver; default `Rodas5P()` (stiff, uses the network's
            structured linear solver). `diffrax.Tsit5()` is faster for non-stiff
            networks.
        rtol, atol: step-size tolerances (each step's error within `atol + rtol *
            |y|`; `atol` in the network's concentration units, see
            `simulate_batch`); `rtol` below 5e-7 needs float64 (a
            `ToleranceWarning` says so).
        max_steps: solver steps before giving up (status MAX_STEPS).
        saveat: None (save the final state only), an int `n` (n evenly spaced times
            from 0 to t1), or an array of times.
        dt0: initial step; None: Hairer's heuristic, as `simulate_batch` chooses
            it (diffrax 0.7's own choice is 0.01 for any problem, and a first step
            far beyond the fastest reaction's time scale loses mass in rounding).
        stop_when_steady: end integration as soon as `max |dy/dt| <= steady_tol`
            (a diffrax event), so `t1` is only an upper bound. A species that can
            grow by catalysis and sits between 0 and `atol / rtol` while it grows
            (a seed, `A + B -> 2 B` from `B = 1e-12`) is not steady, however
            slowly it changes yet.
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
    given = real_array("y0", y0)
    with np.errstate(over="ignore"):  # values beyond the dtype: check_fits below
        y0 = jnp.asarray(y0)
    if not jnp.issubdtype(y0.dtype, jnp.floating):
        y0 = y0.astype(dtype)
    if y0.shape != (network.n_species,):
        raise ValueError(
            f"y0 has shape {y0.shape} but the network has {network.n_species} species;"
            " for a batch use jax.vmap(simulate, in_axes=(None, 0, None)) or "
            "simulate_batch."
        )
    dtype = y0.dtype  # the computation's
    if given is not None:
        names = network.species
        check_fits("y0", given, dtype, lambda i: f"y0[{i[0]}] ({names[i[0]]})")
    if given is not None and (given < 0).any():
        i = int(np.argmax(given < 0))
        raise ValueError(
            f"y0[{i}] ({network.species[i]}) = {given[i]:g}: y0 has a negative "
            "concentration; concentrations must be >= 0."
        )
    if network.n_species == 0:
        raise ValueError("the network has no species: there is nothing to simulate.")
    check_real("t1", t1)
    t1 = jnp.asarray(t1, dtype)
    ts = _resolve_ts(saveat, t1, dtype)
    check_solve_args(
        rtol=rtol, atol=atol, t1=t1, ts=ts, steady_tol=steady_tol,
        max_steps=max_steps, dt0=dt0,
    )  # fmt: skip
    _warn_tolerance(rtol, dtype)
    # under jit, vmap or grad the values are checked when the program runs; a
    # concrete call was checked above, with errors that name the value, and its
    # program carries no checks of its own (t1 is an array here, so a new end time
    # does not compile a new program)
    traced = any(
        isinstance(leaf, jax.core.Tracer)
        for leaf in jax.tree_util.tree_leaves((y0, t1, ts))
    )
    return _simulate(
        network, y0, t1, ts,
        solver=Rodas5P() if solver is None else solver, rtol=rtol, atol=atol,
        max_steps=max_steps, dt0=dt0, stop_when_steady=stop_when_steady,
        steady_tol=steady_tol, save_species=save_species, adjoint=adjoint,
        runtime_checks=traced,
    )  # fmt: skip


@eqx.filter_jit
def _simulate(
    network: MassActionNetwork,
    y0,
    t1,
    ts,
    *,
    solver,
    rtol,
    atol,
    max_steps,
    dt0,
    stop_when_steady,
    steady_tol,
    save_species,
    adjoint,
    runtime_checks: bool,
) -> SimulationResult:
    dtype = y0.dtype
    if runtime_checks:
        y0 = eqx.error_if(
            y0,
            jnp.any(y0 < 0),
            "y0 has a negative concentration; concentrations must be >= 0.",
        )
        # the same checks on traced values, when the program runs
        t1 = eqx.error_if(
            t1,
            ~(jnp.isfinite(t1) & (t1 > 0)),
            "t1 must be a positive finite end time.",
        )
    if runtime_checks and ts is not None:
        ts = eqx.error_if(
            ts,
            ~jnp.all(jnp.isfinite(ts))
            | jnp.any(ts < 0)
            | jnp.any(ts > t1)
            | jnp.any(jnp.diff(ts) < 0),
            "saveat: save times must be finite, increasing and within [0, t1].",
        )

    def save_outputs(t, y, args):
        return network.read_outputs(y)

    # BacksolveAdjoint takes neither `subs` nor `fn`: one flat SaveAt (ts, then t1)
    backsolve = isinstance(adjoint, diffrax.BacksolveAdjoint)
    if backsolve and isinstance(solver, Rodas5P):
        raise ValueError(
            "the backsolve adjoint integrates an augmented state (the state, its "
            "adjoint and the parameters' cotangents), which Rodas5P (the default "
            "solver) does not step; pass solver=diffrax.Kvaerno5() or "
            "diffrax.Tsit5(), or use the default adjoint (checkpoint)."
        )
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
            slow = jnp.max(jnp.abs(network(t, y, None))) <= steady_tol
            # a seed that has yet to grow is not a steady state
            g = network.kinetics.growth_rate(y, network.rates, atol / rtol)
            return slow if g is None else slow & (g <= 0)

        event = diffrax.Event(steady)

    if dt0 is None:
        dt0 = _initial_step(network, y0, t1, rtol, atol)
    controller = diffrax.PIDController(rtol=rtol, atol=atol)
    if network.kinetics.growth_terms is not None:
        controller = _GrowthLimited(controller, network)
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
    status = _status_from(sol.result, y_final, network(t_final, y_final, None))
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
        species_names=network.species,
        output_names=network.output_names,
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
    for name, value in (("ts", ts), ("outputs", outputs), ("final", final)):
        if value is not None:
            check_real(name, value)
    ts = jnp.asarray(ts)
    outputs = jnp.asarray(outputs)
    if ts.ndim != 1 or ts.shape[0] == 0:
        raise ValueError(
            f"ts has shape {ts.shape}: expected the saved times of one sample, shape "
            "(times,) with at least one time."
        )
    if outputs.ndim != 2 or outputs.shape[0] != ts.shape[0]:
        raise ValueError(
            f"outputs has shape {outputs.shape} but ts has {ts.shape[0]} times: "
            f"expected shape ({ts.shape[0]}, outputs), one sample (jax.vmap "
            "convergence_times over a batch)."
        )
    final = outputs[-1] if final is None else jnp.asarray(final, outputs.dtype)
    if final.shape != outputs.shape[1:]:
        raise ValueError(
            f"final has shape {final.shape} but outputs has {outputs.shape[1]} "
            f"outputs per time: expected shape ({outputs.shape[1]},)."
        )
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
