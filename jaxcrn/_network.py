"""The compiled array form of a CRN: `MassActionNetwork` and `compile_crn`."""

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from ._crn import CRN
from ._kinetics import (
    AbstractKinetics,
    DenseKinetics,
    LayeredKinetics,
    SparseKinetics,
    Stoichiometry,
)
from ._kinetics._base import host_array
from ._kinetics._structure import _structure_of


__all__ = ["MassActionNetwork", "compile_crn"]


def check_real(name: str, value) -> None:
    """A `TypeError` naming `name` unless `value` holds real numbers (integers,
    floats or booleans, which read as 0 and 1), traced or not: NumPy would read
    `"5"` as 5 and drop an imaginary part with only a warning. An array's dtype
    decides, so a device array is not copied to the host."""
    if isinstance(value, str | bytes):
        raise TypeError(
            f"{name} must be a real number or array, got the string {value!r}."
        )
    dtype = getattr(value, "dtype", None)  # arrays, traced ones included
    if dtype is None:
        try:
            dtype = np.asarray(value).dtype
        except (TypeError, ValueError) as e:  # ragged lists, objects NumPy cannot read
            raise TypeError(
                f"{name} must be a real number or array, got {value!r}."
            ) from e
    kind = np.dtype(dtype).kind
    if kind not in "biuf":
        what = {"c": "complex", "U": "string", "S": "string", "O": "object"}
        raise TypeError(
            f"{name} must be real numbers, got {what.get(kind, 'non-numeric')} "
            f"{np.dtype(dtype)} values."
        )


def real_array(name: str, value) -> np.ndarray | None:
    """`value` as a float64 NumPy array after `check_real`, or None when it is
    traced (checked where it is concrete; under `jit`/`grad` the caller's values
    are its own)."""
    check_real(name, value)
    try:
        return np.asarray(value, np.float64)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def check_fits(name: str, value, dtype, subject=None) -> None:
    """A `ValueError` unless every finite non-zero number of `value` (host data) is
    a normal number of `dtype`: a larger one would become inf, and a smaller one 0,
    since XLA flushes subnormal numbers to zero (a rate constant of 1e-50 in float32
    deletes its reaction without a word). `subject(index)` names an entry (default
    `name[i, j]`)."""
    a = np.asarray(value, np.float64)
    info = np.finfo(np.dtype(dtype))
    mag = np.abs(a)
    if np.dtype(dtype) == np.float32:
        fix = (
            "compute in float64 (jax.config.update('jax_enable_x64', True) before "
            "compiling the network; on the command line, leave out --float32)"
        )
    else:
        fix = "rescale the units (e.g. concentrations in nM rather than M)"
    for bad, what, bound, becomes in (
        (np.isfinite(a) & (mag > info.max), "above", "largest", "inf"),
        ((mag > 0) & (mag < info.tiny), "below", "smallest normal", "0"),
    ):
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            where = f"{name}[{', '.join(map(str, idx))}]" if idx else name
            limit = info.max if becomes == "inf" else info.tiny
            raise ValueError(
                f"{where if subject is None else subject(idx)} = {a[idx]:g} is {what} "
                f"the range of {np.dtype(dtype).name} ({bound} {float(limit):.4g}): it "
                f"would be computed as {becomes}. To keep it, {fix}."
            )


class MassActionNetwork(eqx.Module):
    """A CRN compiled to arrays: mass-action kinetics as a diffrax vector field.

    Call it as `network(t, y, args)` to get `dy/dt` (the signature of
    `diffrax.ODETerm`). The rate constants `rates` and initial concentrations `y_init`
    are array leaves (differentiable); species names and the input/output maps are
    static metadata. The stoichiometry is part of the kinetics (`structure` gives
    it as tables).

    Example:
        >>> import jax.numpy as jnp
        >>> from jaxcrn import compile_crn, parse_crn
        >>> net = compile_crn(parse_crn("A + B -> C\\ninit A = 1\\ninit B = 2"))
        >>> net(0.0, net.y_init, None).tolist()
        [-2.0, -2.0, 2.0]
    """

    rates: Float[Array, " reactions"]
    y_init: Float[Array, " species"]
    kinetics: AbstractKinetics
    species: tuple[str, ...] = eqx.field(static=True)
    input_names: tuple[str, ...] = eqx.field(static=True)
    input_pos: tuple[int, ...] = eqx.field(static=True)
    input_neg: tuple[int, ...] = eqx.field(static=True)  # -1: single-rail
    output_names: tuple[str, ...] = eqx.field(static=True)
    output_pos: tuple[int, ...] = eqx.field(static=True)
    output_neg: tuple[int, ...] = eqx.field(static=True)

    def __check_init__(self):
        if self.rates.shape != (self.kinetics.n_reactions,):
            raise ValueError(
                f"rates has shape {self.rates.shape} but the network has "
                f"{self.kinetics.n_reactions} reactions."
            )
        if self.y_init.shape != (self.kinetics.n_species,):
            raise ValueError(
                f"y_init has shape {self.y_init.shape} but the network has "
                f"{self.kinetics.n_species} species."
            )

    # -- vector field -------------------------------------------------------------
    autonomous: ClassVar[bool] = True

    def __call__(
        self, t, y: Float[Array, " species"], args
    ) -> Float[Array, " species"]:
        del t, args
        return self.kinetics.rhs(y, self.rates.astype(y.dtype))

    def linear_solver(self, t, y: Float[Array, " species"], lam):
        """`solve(b)` for `(lam*I - J(y)) x = b` (what `Rodas5P` asks for)."""
        del t
        factors = self.kinetics.factor(y, self.rates.astype(y.dtype), lam)
        return lambda b: self.kinetics.solve(factors, b)

    def flux(self, y: Float[Array, " species"]) -> Float[Array, " reactions"]:
        """Reaction fluxes `k_r * prod y^reactants` at state `y`."""
        return self.kinetics.flux(y, self.rates.astype(y.dtype))

    def jacobian(self, y: Float[Array, " species"]) -> Float[Array, "species species"]:
        """The Jacobian `d(dy/dt)_i / d y_j` at `y` (dense)."""
        return self.kinetics.jacobian(y, self.rates.astype(y.dtype))

    @property
    def structure(self) -> Stoichiometry:
        """The stoichiometry as host-side tables, species in `self.species` order."""
        return self.kinetics.tables  # pyright: ignore[reportAttributeAccessIssue]

    # -- sizes and names ----------------------------------------------------------
    @property
    def n_species(self) -> int:
        return self.kinetics.n_species

    @property
    def n_reactions(self) -> int:
        return self.kinetics.n_reactions

    @property
    def n_inputs(self) -> int:
        return len(self.input_names)

    @property
    def n_outputs(self) -> int:
        return len(self.output_names)

    @property
    def form(self) -> str:
        """The array layout: "dense", "sparse" or "layered"."""
        return {
            DenseKinetics: "dense",
            SparseKinetics: "sparse",
            LayeredKinetics: "layered",
        }.get(type(self.kinetics), type(self.kinetics).__name__)

    def index(self, species: str) -> int:
        """Position of a species in the state vector."""
        try:
            return self.species.index(species)
        except ValueError:
            raise KeyError(
                f"No species named {species!r}; the network has {self.n_species} "
                f"species ({', '.join(self.species[:8])}"
                f"{', ...' if self.n_species > 8 else ''})."
            ) from None

    # -- inputs and outputs ---------------------------------------------------------
    def initial_state(
        self,
        x: Float[ArrayLike, " inputs"] | None = None,
        *,
        offset: float | Float[ArrayLike, ""] = 0.0,
        dtype=None,
    ) -> Float[Array, " species"]:
        """Initial concentrations for input vector `x`: `init` values plus the inputs.

        A dual-rail input `x_i = [P] - [N]` sets `[P] = max(x_i, 0) + offset` and
        `[N] = max(-x_i, 0) + offset`; a single-species input sets `[P] = x_i`, which
        must be >= 0 (negative values make the state NaN, and `simulate` flags it).
        The input concentrations add to any `init` value of the same species.

        Arguments:
            x: one input vector, shape `(inputs,)`; None for a network without inputs.
            offset: added to both rails of every dual-rail input (rate-independent
                CRNs compute the same result; it changes how fast they get there).
        """
        dtype = self.y_init.dtype if dtype is None else dtype
        y0 = self.y_init.astype(dtype)
        if self.n_inputs == 0:
            if x is not None and jnp.size(x) != 0:
                raise ValueError(
                    f"x has {jnp.size(x)} entries but the network declares no inputs."
                )
            return y0
        if x is None:
            raise ValueError(
                f"The network has {self.n_inputs} inputs "
                f"({', '.join(self.input_names)}); pass an input vector x."
            )
        x = jnp.asarray(x, dtype)
        if x.shape != (self.n_inputs,):
            raise ValueError(
                f"x has shape {x.shape} but the network has {self.n_inputs} inputs "
                f"({', '.join(self.input_names[:6])}"
                f"{', ...' if self.n_inputs > 6 else ''}); for a batch use "
                "jax.vmap or simulate_batch."
            )
        offset = jnp.asarray(offset, dtype)
        pos = jnp.asarray(self.input_pos)
        neg = np.asarray(self.input_neg)
        dual = neg >= 0
        pos_val = jnp.where(
            jnp.asarray(dual),
            jnp.maximum(x, 0.0) + offset,
            jnp.where(x < 0, jnp.nan, x),
        )
        y0 = y0.at[pos].add(pos_val)
        if dual.any():
            idx = np.flatnonzero(dual)
            y0 = y0.at[jnp.asarray(neg[idx])].add(jnp.maximum(-x[idx], 0.0) + offset)
        return y0

    def read_outputs(
        self, y: Float[Array, "*batch species"]
    ) -> Float[Array, "*batch outputs"]:
        """Output values `[pos] - [neg]` from state(s) `y`."""
        pos = y[..., jnp.asarray(self.output_pos, jnp.int32)]
        neg_idx = np.asarray(self.output_neg)
        if (neg_idx < 0).all():
            return pos
        neg = jnp.where(
            jnp.asarray(neg_idx >= 0), y[..., jnp.asarray(np.maximum(neg_idx, 0))], 0.0
        )
        return pos - neg

    def with_rates(self, rates: Float[ArrayLike, " reactions"]) -> "MassActionNetwork":
        """A copy with new rate constants (same compiled structure, no recompile).
        Rate constants are finite and >= 0 (checked when they are concrete; traced
        ones when the simulation runs)."""
        given = real_array("rates", rates)
        if given is not None:
            check_fits("rates", given, self.rates.dtype)
        rates = jnp.asarray(rates, self.rates.dtype)
        if rates.shape != self.rates.shape:
            raise ValueError(
                f"rates has {rates.shape[0] if rates.ndim else 'no'} entries but the "
                f"network has {self.n_reactions} reactions."
            )
        try:
            k = np.asarray(rates)
        except jax.errors.TracerArrayConversionError:
            k = None
        if k is not None:
            bad = ~np.isfinite(k) | (k < 0)
            if bad.any():
                j = int(np.argmax(bad))
                raise ValueError(
                    f"rates[{j}] = {float(k[j])}: rate constants must be finite and "
                    ">= 0."
                )
        else:
            rates = eqx.error_if(
                rates,
                jnp.any(~jnp.isfinite(rates) | (rates < 0)),
                "a rate constant is negative or not finite; rate constants must be "
                "finite and >= 0.",
            )
        return eqx.tree_at(lambda n: n.rates, self, rates)

    # -- dense views ----------------------------------------------------------------
    def stoichiometry(self) -> tuple[np.ndarray, np.ndarray]:
        """Dense `(reactants, products)` integer matrices, shape (reactions, species),
        species in `self.species` order."""
        return self.structure.dense()


# Under form="auto": feed-forward networks that can be aligned, with at most this
# many wavefronts (every operation is unrolled per wavefront), use the layered
# layout; every other network the sparse one.
LAYERED_MAX_WAVEFRONTS = 64
FORMS = ("auto", "dense", "sparse", "layered")


def compile_crn(crn: CRN, *, form: str = "auto", dtype=None) -> MassActionNetwork:
    """Compile a `CRN` to a `MassActionNetwork` (arrays, ready for `simulate`).

    Arguments:
        crn: the symbolic network.
        form: the array layout: `"dense"`, `"sparse"`, `"layered"` (feed-forward
            networks whose blocks are each consumed by one reaction, as every CRN
            compiled from a neural network: slices and exact block solves), or
            `"auto"`: layered when possible (with at most 64 wavefronts), else
            sparse. `"dense"` holds the stoichiometry as plain arrays (networks of
            equal shape share one compilation and can be stacked and vmapped
            over; implicit steps by a dense pivoted LU); `"sparse"` compiles the
            sparsity in (a sparse LU scheduled from the stoichiometry).
        dtype: floating dtype of rates and concentrations (default: JAX's default
            float, i.e. float64 when `jax_enable_x64` is on). float32 halves memory
            and is faster on GPUs; use float64 for tolerances below ~1e-6.

    With the layered layout the species are stored in wavefront order
    (`network.species` lists them in that order; `network.index(name)` finds one).

    Example:
        >>> from jaxcrn import compile_crn, parse_crn
        >>> net = compile_crn(parse_crn("X -> Y\\ninput x = X\\noutput y = Y"))
        >>> net.species, net.form
        (('X', 'Y'), 'layered')
    """
    if not isinstance(crn, CRN):
        raise TypeError(f"compile_crn expects a CRN, got {type(crn).__name__}.")
    if form not in FORMS:
        raise ValueError(f"form={form!r} is not one of {', '.join(map(repr, FORMS))}.")
    dtype = jnp.result_type(float) if dtype is None else jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"dtype must be a floating dtype, got {dtype}.")
    species = crn.species
    tables = Stoichiometry.from_crn(crn, species)
    kinetics: AbstractKinetics | None = None
    if form in ("auto", "layered"):
        structure = _structure_of(tables, species, 2)
        why = structure.reason
        aligned = None
        if structure.ok:
            aligned = LayeredKinetics.build(tables, structure, dtype)
            if aligned is None:
                why = (
                    "some block of species is consumed by more than one reaction, or "
                    "a reaction has no reactants"
                )
            elif form == "auto" and structure.n_wavefronts > LAYERED_MAX_WAVEFRONTS:
                aligned = None
        if aligned is not None:
            order, kinetics = aligned
            species = tuple(species[i] for i in order)
            tables = tables.permuted(order)
        elif form == "layered":
            raise ValueError(
                f"form='layered' needs a feed-forward network whose blocks are each "
                f"consumed by one reaction, but {why}. Use form='sparse' or 'dense'."
            )
        else:
            form = "sparse"
    if kinetics is None:
        cls = DenseKinetics if form == "dense" else SparseKinetics
        kinetics = cls.build(tables, dtype)
    index = {s: i for i, s in enumerate(species)}
    y_init = np.zeros(tables.n_species)
    for s, v in crn.init:
        y_init[index[s]] = v
    rates = np.array([r.rate for r in crn.reactions], dtype=np.float64)
    check_fits(
        "rates", rates, dtype,
        lambda i: f"the rate constant of reaction {i[0]} "
        f"({' '.join(crn.reactions[i[0]].text().split())})",
    )  # fmt: skip
    check_fits("y_init", y_init, dtype, lambda i: f"init {species[i[0]]}")
    return MassActionNetwork(
        rates=host_array(rates, dtype),
        y_init=host_array(y_init, dtype),
        kinetics=kinetics,
        species=species,
        input_names=tuple(s.name for s in crn.inputs),
        input_pos=tuple(index[s.pos] for s in crn.inputs),
        input_neg=tuple(-1 if s.neg is None else index[s.neg] for s in crn.inputs),
        output_names=tuple(s.name for s in crn.outputs),
        output_pos=tuple(index[s.pos] for s in crn.outputs),
        output_neg=tuple(-1 if s.neg is None else index[s.neg] for s in crn.outputs),
    )
