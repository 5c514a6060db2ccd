"""Differentiable batch simulation: `simulate_differentiable`.

`simulate` under `jax.vmap`, one sample per lane, with per-sample inputs, initial
concentrations, rate constants and save times, and a choice of diffrax adjoint. Every
output is a JAX array, so `jax.grad`, `jax.jacfwd` and `jax.jit` see through it (the
batch engine of `simulate_batch` does not: its scheduler is a `lax.while_loop` over
lanes, and it returns NumPy arrays).
"""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Real

from ._network import MassActionNetwork, check_fits, check_real, real_array
from ._simulate import SimulationResult, check_solve_args, simulate


__all__ = ["ADJOINTS", "simulate_differentiable"]

ADJOINTS = ("checkpoint", "backsolve", "forward")


def _adjoint(adjoint) -> diffrax.AbstractAdjoint:
    if isinstance(adjoint, diffrax.AbstractAdjoint):
        return adjoint
    if adjoint == "checkpoint":
        return diffrax.RecursiveCheckpointAdjoint()
    if adjoint == "backsolve":
        return diffrax.BacksolveAdjoint()
    if adjoint == "forward":
        return diffrax.ForwardMode()
    raise ValueError(
        f"adjoint={adjoint!r} is not one of 'checkpoint' (reverse mode, recursive "
        "checkpointing: jax.grad), 'backsolve' (reverse mode, adjoint ODE solved "
        "backwards: less memory, jax.grad), 'forward' (forward mode: jax.jacfwd / "
        "jax.jvp, cheapest for a few parameters) or a diffrax.AbstractAdjoint."
    )


def _batched(name, value, width, what, dtype):
    """`value` as a float array of shape `(width,)` (shared) or `(batch, width)`;
    returns `(array, batch or None)`."""
    given = real_array(name, value)
    with np.errstate(over="ignore"):  # values beyond the dtype: check_fits below
        a = jnp.asarray(value)
    if not jnp.issubdtype(a.dtype, jnp.floating):
        a = a.astype(dtype)
    if given is not None:
        check_fits(name, given, a.dtype)
    if a.ndim == 1 and a.shape[0] == width:
        return a, None
    if a.ndim == 2 and a.shape[1] == width:
        return a, a.shape[0]
    raise ValueError(
        f"{name} has shape {a.shape}; expected ({width},) (one {what} vector shared "
        f"by every sample) or (batch, {width}) (one per sample)."
    )


def simulate_differentiable(
    network: MassActionNetwork,
    inputs: Float[ArrayLike, "*batch_x inputs"] | None,
    t1: Real[ArrayLike, ""],
    *,
    y0: Float[ArrayLike, "*batch_y species"] | None = None,
    rates: Float[ArrayLike, "*batch_k reactions"] | None = None,
    saveat: int | Float[ArrayLike, "*batch_t times"] | None = None,
    adjoint: str | diffrax.AbstractAdjoint = "checkpoint",
    solver: diffrax.AbstractSolver | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    max_steps: int = 16_384,
    offset: float | Real[ArrayLike, ""] = 0.0,
    dt0: float | None = None,
    save_species: bool = True,
) -> SimulationResult:
    """Simulate a batch differentiably: `simulate` under `jax.vmap`.

    Each sample starts from `initial_state(inputs[b], offset)` of the network with
    its `init` concentrations replaced by `y0[b]` and its rate constants by
    `rates[b]` (any of the three may be shared, shape without the batch axis, or
    omitted). The result is a `SimulationResult` of JAX arrays, differentiable with
    respect to `inputs`, `y0`, `rates`, `offset`, `t1` and array save times, and
    `network`'s own arrays: `jax.grad` with `adjoint="checkpoint"` (default) or
    `"backsolve"` (rates, inputs, `y0` and `offset` only, with a diffrax solver;
    diffrax's backsolve adjoint differentiates neither end nor save times),
    `jax.jacfwd`/`jax.jvp` with `adjoint="forward"`. A sample that
    fails is flagged in `status` (its outputs NaN) and never raises. Jit the
    function you differentiate; pass values that change (times, inputs) as arrays
    so that they do not recompile.

    Arguments:
        network: the compiled network.
        inputs: input vectors, shape `(batch, inputs)` or `(inputs,)`; None for a
            network without inputs.
        t1: end time (a scalar).
        y0: initial concentrations replacing the network's `init` values, shape
            `(batch, species)` or `(species,)`; inputs are added on top as in
            `network.initial_state`. Default: the network's `y_init`.
        rates: rate constants, shape `(batch, reactions)` or `(reactions,)`.
            Default: the network's.
        saveat: None (final state only), an int `n` (n evenly spaced times from 0
            to t1), an array of times `(times,)`, or one per sample
            `(batch, times)`.
        adjoint: `"checkpoint"` (diffrax's `RecursiveCheckpointAdjoint`),
            `"backsolve"` (`BacksolveAdjoint`: the adjoint ODE backwards in time,
            memory independent of the number of steps; it rebuilds the state
            backwards, which amplifies errors in dissipative chemistry: on a CRN
            compiled from the virus network its gradient had entries 50% off and
            of the wrong sign), `"forward"` (`ForwardMode`, for `jax.jacfwd`:
            cheapest with few parameters), or any diffrax adjoint.
        solver: a diffrax solver; default `Rodas5P()` (stiff). `diffrax.Tsit5()`
            is faster for networks that are not stiff.
        rtol, atol: step-size tolerances (gradients are as accurate as the solve).
        max_steps: solver steps per sample before giving up (status MAX_STEPS).
        offset: dual-rail offset added to both rails of every input.
        dt0: initial step; None: Hairer's heuristic, as in `simulate`.
        save_species: save whole states (`ys`) at the save times, else only the
            outputs.

    Returns:
        A `SimulationResult` with a leading batch axis (none when no argument has
        one).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from jaxcrn import compile_crn, parse_crn, simulate_differentiable
        >>> net = compile_crn(parse_crn("A -> B [k=0.5]\\ninit A = 1"))
        >>> def b_at_2(k):  # [B](t=2) for a batch of two rate constants
        ...     res = simulate_differentiable(net, None, jnp.asarray(2.0),
        ...                                   rates=k[:, None])
        ...     return res.y_final[:, 1]
        >>> k = jnp.array([0.5, 1.0])
        >>> [round(float(g), 4) for g in jnp.diag(jax.jacrev(b_at_2)(k))]  # 2 e^{-2k}
        [0.7358, 0.2707]
    """
    if not isinstance(network, MassActionNetwork):
        raise TypeError(
            "simulate_differentiable expects a MassActionNetwork (see compile_crn), "
            f"got {type(network).__name__}."
        )
    check_solve_args(rtol=rtol, atol=atol, t1=t1, max_steps=max_steps, offset=offset)
    dtype = network.y_init.dtype
    batch: dict[str, int] = {}
    args: dict[str, Array | None] = {}
    if inputs is None:
        if network.n_inputs:
            raise ValueError(
                f"The network has {network.n_inputs} inputs "
                f"({', '.join(network.input_names[:6])}); pass inputs of shape "
                f"(batch, {network.n_inputs})."
            )
        args["inputs"] = None
    else:
        if not network.n_inputs:
            raise ValueError(
                "inputs were given but the network declares no inputs; pass "
                "inputs=None (and y0 for the initial concentrations)."
            )
        args["inputs"], b = _batched("inputs", inputs, network.n_inputs, "input", dtype)
        if b is not None:
            batch["inputs"] = b
    for name, value, width, what in (
        ("y0", y0, network.n_species, "concentration"),
        ("rates", rates, network.n_reactions, "rate"),
    ):
        if value is None:
            args[name] = None
            continue
        args[name], b = _batched(name, value, width, what, dtype)
        if b is not None:
            batch[name] = b
    ts = None
    if saveat is not None and not isinstance(saveat, int):
        check_real("saveat", saveat)
        ts = jnp.asarray(saveat, dtype)
        if ts.ndim == 2:
            batch["saveat"] = ts.shape[0]
        elif ts.ndim != 1:
            raise ValueError(
                f"saveat has shape {ts.shape}; expected an int, (times,) or "
                "(batch, times)."
            )
    sizes = set(batch.values())
    if len(sizes) > 1:
        raise ValueError(
            "The batched arguments disagree on the batch size: "
            + ", ".join(f"{k} has {v}" for k, v in batch.items())
            + "; give them the same leading axis, or share one without it."
        )
    if 0 in sizes:
        raise ValueError("the batch is empty: nothing to simulate.")
    check_real("t1", t1)
    t1 = jnp.asarray(t1, dtype)
    if t1.ndim != 0:
        raise ValueError(f"t1 must be a scalar, got shape {t1.shape}.")
    options = dict(
        solver=solver,
        rtol=rtol,
        atol=atol,
        max_steps=max_steps,
        dt0=dt0,
        save_species=save_species,
        adjoint=_adjoint(adjoint),
    )
    return _run(
        network,
        args["inputs"],
        args["y0"],
        args["rates"],
        ts if ts is not None else saveat,
        t1,
        jnp.asarray(offset, dtype),
        tuple(sorted(batch)),
        options,
    )


@eqx.filter_jit
def _run(network, inputs, y0, rates, saveat, t1, offset, batched, options):
    def one(x, y_init, k, ts):
        net = network
        if k is not None:
            net = net.with_rates(k)
        if y_init is not None:
            net = eqx.tree_at(lambda n: n.y_init, net, y_init.astype(dtype))
        start = net.initial_state(x, offset=offset)
        return simulate(net, start, t1, saveat=ts, **options)

    dtype = network.y_init.dtype
    if not batched:
        return one(inputs, y0, rates, saveat)
    axes = tuple(
        0 if name in batched else None for name in ("inputs", "y0", "rates", "saveat")
    )
    return jax.vmap(one, in_axes=axes)(inputs, y0, rates, saveat)
