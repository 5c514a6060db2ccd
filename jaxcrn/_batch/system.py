"""What the lanes integrate: a network's kinetics on the engine's state rows, with
per-lane parameters, and the exact solution of its freely decaying species.

A species that is never produced and only decays by first-order reactions
`X -> ...` (the input layer of every CRN compiled from a neural network) has the
exact solution `X(t) = X(0) exp(-K t)`, `K` the sum of its rate constants. Such
species are left out of the state and their outflow enters the other species as
a forcing term: the same vector field, fewer rows, and the network's largest
fan-out gone from every right-hand side and solve. When all of them decay at one
common rate in a lane (a compiled network at its own rates) the forcing is
`c exp(-K t)`, one amplitude per forcing row; otherwise (a rate ensemble, where
every reaction has its own rate) it is `M (a * exp(-k t))`, one amplitude `a` and
rate `k` per decay reaction and `M` their net stoichiometry on the forcing rows.
`plan_batch` decides when (`exact_inputs`).
"""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._kinetics import (
    AbstractKinetics,
    DenseKinetics,
    LayeredKinetics,
    SparseKinetics,
)
from .._kinetics._base import host_array
from .._kinetics._structure import GrowthTerms, _structure_of


__all__ = ["LaneParams", "LaneSystem", "StateMap", "build_system"]


class LaneParams(eqx.Module):
    """Per-lane parameters (None where not used): in the lanes the lane axis is
    last (`rates` `(reactions, lanes)`; with a common decay rate `force`
    `(forcing rows, lanes)` and `decay` `(lanes,)`, otherwise both `(decay
    reactions, lanes)`); in the queue the sample axis is first."""

    rates: Array | None  # None: the system's shared rates
    force: Array | None  # forcing amplitudes: c (common rate) or a (per reaction)
    decay: Array | None  # forcing decay rates: K (common) or k (per reaction)


class LaneSystem(eqx.Module):
    """The vector field the lanes integrate, `dy/dt = kinetics(y, rates) + forcing`,
    on `(state rows, lanes)` arrays, with its linear solve."""

    kinetics: AbstractKinetics
    rates: Float[Array, " reactions"]  # shared rate constants (state reactions)
    force_lo: int = eqx.field(static=True)  # forcing rows [force_lo, force_hi)
    force_hi: int = eqx.field(static=True)
    # (forcing rows, decay reactions): None with a common decay rate
    force_matrix: Array | None = None
    # `kinetics.growth_terms`, read on the host (a dense layout's are data)
    growth: GrowthTerms | None = eqx.field(static=True, default=None)

    @property
    def n_state(self) -> int:
        return self.kinetics.n_species

    def rates_of(self, p: LaneParams):
        return self.rates[:, None] if p.rates is None else p.rates

    def forcing(self, t, p: LaneParams):
        """`c exp(-K t)` or `M (a exp(-k t))`; `t` a scalar or one time per lane as
        a row `(1, lanes)`."""
        assert p.force is not None and p.decay is not None
        if self.force_matrix is None:
            return p.force * jnp.exp(-p.decay[None, :] * t)
        m = self.force_matrix.astype(p.force.dtype)
        return m @ (p.force * jnp.exp(-p.decay * t))

    def rhs(self, t, y, p: LaneParams):
        """`dy/dt`; `t` has one time per lane (or is a scalar)."""
        dy = self.kinetics.rhs(y, self.rates_of(p).astype(y.dtype))
        if p.force is not None:
            dy = dy.at[self.force_lo : self.force_hi].add(self.forcing(t, p))
        return dy

    def dfdt(self, t, y, p: LaneParams):
        """`d(dy/dt)/dt` at fixed `y`: None when autonomous."""
        if p.force is None:
            return None
        if self.force_matrix is None:
            d = -p.decay[None, :] * self.forcing(t, p)
        else:
            m = self.force_matrix.astype(p.force.dtype)
            d = m @ (-p.decay * p.force * jnp.exp(-p.decay * t))
        return jnp.zeros_like(y).at[self.force_lo : self.force_hi].set(d)

    def growth_rate(self, y, p: LaneParams, below=None):
        """Per lane, a bound on catalytic growth (`AbstractKinetics.growth_rate`;
        None: nothing can grow)."""
        if self.growth is None:
            return None
        rates = self.rates_of(p).astype(y.dtype)
        return self.kinetics.growth_rate(y, rates, below, self.growth)

    def factor(self, y, p: LaneParams, lam):
        return self.kinetics.factor(y, self.rates_of(p).astype(y.dtype), lam)

    def solve(self, factors, b):
        return self.kinetics.solve(factors, b)


@dataclasses.dataclass(frozen=True)
class StateMap:
    """How the engine's state relates to the network (host side).

    `rows[i]`: the network species of state row `i`. `decay_species`/`decay_rxns`:
    the freely decaying species left out of the state (empty without exact inputs),
    `force_matrix` `(force rows, decay reactions)` the net stoichiometry of those
    reactions on the forcing rows, `decay_src` the decaying species (position in
    `decay_species`) each reaction consumes."""

    rows: np.ndarray
    state_reactions: np.ndarray
    decay_species: np.ndarray
    decay_rxns: np.ndarray
    decay_src: np.ndarray
    force_matrix: np.ndarray
    force_lo: int
    force_hi: int

    @property
    def exact(self) -> bool:
        return self.decay_species.size > 0

    def state_row(self) -> np.ndarray:
        """network species -> state row (-1: not in the state)."""
        out = -np.ones(self.rows.size + self.decay_species.size, np.int64)
        out[self.rows] = np.arange(self.rows.size)
        return out


def _kinetics_like(network, tables, dtype):
    """Kinetics of `tables` in the network's layout: `(row order, kinetics)`."""
    if network.form == "layered":
        structure = _structure_of(tables, [str(i) for i in range(tables.n_species)], 2)
        if structure.ok:
            built = LayeredKinetics.build(tables, structure, dtype)
            if built is not None:
                return built
    cls = DenseKinetics if network.form == "dense" else SparseKinetics
    return np.arange(tables.n_species), cls.build(tables, dtype)


def free_decay_split(network):
    """`(species, reactions, K)` of the network's freely decaying species that no
    output reads, with the total decay rate `K` of each (host side); empty when
    there are none."""
    tables = network.structure
    species, rxns = tables.free_decays
    read = set(network.output_pos) | {i for i in network.output_neg if i >= 0}
    keep = np.array([s not in read for s in species.tolist()], bool)
    species = species[keep]
    rset = set(species.tolist())
    rxns = np.array(
        [r for r in rxns.tolist() if tables.reactants[r][0] in rset], np.int64
    )
    return species, rxns


def common_decay(network, species, rxns, rates: np.ndarray) -> np.ndarray:
    """Per rate set (rows of `rates`, `(sets, reactions)`), whether all `species`
    decay at one common rate; returns that rate (NaN where they do not)."""
    rates = np.atleast_2d(rates)
    pos = {s: i for i, s in enumerate(species.tolist())}
    src = np.array([pos[network.structure.reactants[r][0]] for r in rxns], np.int64)
    k = np.zeros((rates.shape[0], species.size))
    np.add.at(k.T, src, rates[:, rxns].T)
    ok = (k > 0).all(axis=1) & np.isclose(k, k[:, :1], rtol=1e-12, atol=0).all(axis=1)
    return np.where(ok, k[:, 0], np.nan)


_SYSTEM_CACHE: dict = {}


def _state_rates(network, reactions, dtype) -> jax.Array:
    """The rate constants of the state's reactions, gathered on the host (indexing
    the device array would compile a handful of small programs per process)."""
    return host_array(np.asarray(network.rates)[reactions], dtype)


def build_system(
    network, exact: bool, common: bool = True
) -> tuple[LaneSystem, StateMap]:
    """The engine's `LaneSystem` for `network` and how its state maps back (cached
    per network structure and layout); `common`: the freely decaying species of
    each lane decay at one rate (the forcing's form, see the module)."""
    dtype = network.y_init.dtype
    common = bool(common) or not exact
    key = (network.structure, network.form, exact, common, jnp.dtype(dtype).name)
    hit = _SYSTEM_CACHE.get(key)
    if hit is not None:
        system, smap = hit
        rates = _state_rates(network, smap.state_reactions, dtype)
        return eqx.tree_at(lambda s: s.rates, system, rates), smap
    tables = network.structure
    n, r = tables.n_species, tables.n_reactions
    if exact:
        d_species, d_rxns = free_decay_split(network)
    else:
        d_species = d_rxns = np.zeros(0, np.int64)
    keep_s = np.setdiff1d(np.arange(n), d_species)
    keep_r = np.setdiff1d(np.arange(r), d_rxns)
    if d_species.size:
        sub = tables.restrict(keep_s, keep_r)
        order, kinetics = _kinetics_like(network, sub, dtype)
        rows = keep_s[order]
    else:
        order = np.arange(n)
        kinetics = network.kinetics
        rows = order
    row_of = -np.ones(n, np.int64)
    row_of[rows] = np.arange(rows.size)
    # forcing: net stoichiometry of the decay reactions on the state rows
    pos = {s: i for i, s in enumerate(d_species.tolist())}
    src = np.array([pos[tables.reactants[q][0]] for q in d_rxns.tolist()], np.int64)
    full = np.zeros((rows.size, d_rxns.size))
    col = {q: i for i, q in enumerate(d_rxns.tolist())}
    for q, s, c in zip(
        tables.net_r.tolist(), tables.net_s.tolist(), tables.net_c.tolist(), strict=True
    ):
        if q in col and row_of[s] >= 0:
            full[row_of[s], col[q]] += c
    nz = np.flatnonzero(full.any(axis=1))
    lo, hi = (int(nz[0]), int(nz[-1]) + 1) if nz.size else (0, 0)
    smap = StateMap(
        rows=rows,
        state_reactions=keep_r,
        decay_species=d_species,
        decay_rxns=d_rxns,
        decay_src=src,
        force_matrix=full[lo:hi],
        force_lo=lo,
        force_hi=hi,
    )
    system = LaneSystem(
        kinetics,
        _state_rates(network, keep_r, dtype),
        lo,
        hi,
        None if common else host_array(full[lo:hi], dtype),
        kinetics.growth_terms,
    )
    if len(_SYSTEM_CACHE) >= 16:
        _SYSTEM_CACHE.pop(next(iter(_SYSTEM_CACHE)))
    _SYSTEM_CACHE[key] = (system, smap)
    return system, smap


class Forcing(eqx.Module):
    """Device arrays to compute each sample's forcing from its initial state."""

    decay_rxns: Array  # (R_D,) network reactions of the decaying species
    decay_species: Array  # (R_D,) network species each of them consumes
    src: Array  # (R_D,) position of that species among the decaying ones
    matrix: Array  # (force rows, R_D)
    n_decay: int = eqx.field(static=True)  # decaying species
    common: bool = eqx.field(static=True)  # one decay rate per lane

    @classmethod
    def of(cls, smap: StateMap, dtype, common: bool = True) -> "Forcing":
        return cls(
            host_array(smap.decay_rxns, jnp.int32),
            host_array(smap.decay_species[smap.decay_src], jnp.int32),
            host_array(smap.decay_src, jnp.int32),
            host_array(smap.force_matrix, dtype),
            int(smap.decay_species.size),
            bool(common),
        )

    def params(self, rates, y0) -> tuple[Array, Array, Array]:
        """`(force, decay, K)` for initial states `y0` `(samples, species)` and rate
        constants `rates` `(samples, reactions)` or `(reactions,)`, sample axis
        first: `force`/`decay` as `LaneParams` holds them (see `LaneSystem`), `K`
        `(samples, decaying species)` the total decay rate of each."""
        k = rates[..., self.decay_rxns]
        k = jnp.broadcast_to(k, (y0.shape[0], k.shape[-1]))
        total = jnp.zeros((y0.shape[0], self.n_decay), k.dtype)
        total = total.at[:, self.src].add(k)
        amp = k * y0[:, self.decay_species]
        if self.common:
            c = amp @ self.matrix.astype(y0.dtype).T
            return c, total[:, 0], total
        return amp, total[:, self.src], total
