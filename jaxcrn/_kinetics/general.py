"""Layouts for any mass-action network: `DenseKinetics` and `SparseKinetics`.

Both gather the reactant concentrations of every reaction by index (padding slots
read a constant 1, so fluxes have finite gradients at zero concentration).

- `DenseKinetics` is pure data: the stoichiometry is held in arrays of shape
  `(reactions, order)` and `(species, reactions)`, implicit steps use a dense LU
  with partial pivoting. Networks of equal shape share one compilation and can be
  stacked and vmapped over (a batch of different networks). For small networks and
  studies over many topologies.
- `SparseKinetics` compiles the sparsity in: `dy/dt` is one matrix product with the
  net stoichiometry where it is dense enough, else a sum over the few reactions
  that change each species, and implicit steps use a `SparseLU` whose schedule
  (ordering, fill, levels) is computed from the stoichiometry once. The fast
  choice for the batch engine, at every size.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from ._base import AbstractKinetics, GatherSum, ReactantGather, host_array
from ._lu import DenseLU, LUSchedule, SparseLU, dense_lu_factor, dense_lu_solve
from ._structure import Stoichiometry


__all__ = ["DenseKinetics", "SparseKinetics"]

# net stoichiometry applied as a dense matrix product when at least this fraction
# of its entries is non-zero (or the network is this small); below, as gathers
DENSE_NET_FRACTION = 0.15
DENSE_NET_SIZE = 64
# a sparse LU schedule of more levels than this compiles slowly (every level is a
# few operations of its own), and one whose multiply-adds exceed this fraction of a
# dense factorisation's saves little: then the sparse layout solves with a dense LU
SPARSE_LU_MAX_LEVELS = 400
SPARSE_LU_MAX_FRACTION = 0.5
# ...but never for networks this small: even a full schedule is at most n^3/3
# (~11,000) multiply-adds, and a dense LU keeps a CPU run on one worker (see the
# plan; approximate majority and rps, 3 species, ran on one)
SPARSE_LU_ALWAYS_UP_TO = 32


def _lu_for(tables: Stoichiometry, dtype) -> SparseLU | DenseLU:
    r, slot, row, coeff = tables.jacobian_terms
    pr = tables.padded_reactants()
    col = pr[r, slot] if r.size else np.zeros(0, np.int64)
    n = tables.n_species
    src = r * tables.max_order + slot
    sched = LUSchedule.build(n, tables.jacobian_pattern()) if n else None
    if sched is not None and n > SPARSE_LU_ALWAYS_UP_TO:
        levels = sched.n_levels + 2 * len({g.level for g in sched.forward_groups})
        dense_work = n**3 / 3
        if (
            levels > SPARSE_LU_MAX_LEVELS
            or sched.n_pairs > SPARSE_LU_MAX_FRACTION * dense_work
        ):
            return DenseLU.build(n, src, row, col, coeff, dtype=dtype)
    return SparseLU.build(
        n,
        src,
        row,
        col,
        coeff,
        n_values=tables.n_reactions * tables.max_order,
        dtype=dtype,
        schedule=sched,
    )


def _net_matrix(tables: Stoichiometry) -> np.ndarray:
    net = np.zeros((tables.n_species, tables.n_reactions))
    np.add.at(net, (tables.net_s, tables.net_r), tables.net_c)
    return net


class DenseKinetics(AbstractKinetics):
    """Dense net stoichiometry as data: `dy/dt = N^T f` as one matrix product;
    implicit steps by a dense, pivoted LU of `lam*I - J` (J assembled from the
    reactant index and `N`).

    Example:
        >>> import jax.numpy as jnp
        >>> from jaxcrn import compile_crn, parse_crn
        >>> net = compile_crn(parse_crn("A + B -> C"), form="dense")
        >>> net.kinetics.rhs(jnp.array([1.0, 2.0, 0.0]), net.rates).tolist()
        [-2.0, -2.0, 2.0]
    """

    reactant_index: Int[Array, "reactions order"]
    net_t: Float[Array, "species reactions"]
    n_species: int = eqx.field(static=True)
    n_reactions: int = eqx.field(static=True)

    @classmethod
    def build(cls, tables: Stoichiometry, dtype) -> "DenseKinetics":
        return cls(
            host_array(tables.padded_reactants()),
            host_array(_net_matrix(tables), dtype),
            tables.n_species,
            tables.n_reactions,
        )

    @property
    def growth_terms(self):
        """From the arrays when they are concrete. The stoichiometry is data in
        this layout (`trainable_crn` learns it; networks of one shape stack under
        `jax.vmap`), so inside a trace it is unknown: None (the batch engine reads
        it on the host, when it builds its lane system)."""
        try:
            return self.tables.growth_terms
        except jax.errors.TracerArrayConversionError:
            return None

    @property
    def tables(self) -> Stoichiometry:
        """The stoichiometry tables (host side, from the arrays)."""
        return Stoichiometry.from_arrays(
            np.asarray(self.reactant_index), np.asarray(self.net_t)
        )

    def _gather(self):
        return ReactantGather(self.reactant_index, self.n_species)

    def _flux(self, y, rates):
        return self._gather().flux(y, rates)

    def _rhs(self, y, rates):
        return self.net_t.astype(y.dtype) @ self._flux(y, rates)

    def _dense_jacobian(self, y, rates):
        """`(species, species, lanes)`: `J = N^T (sum_k dflux/dslot_k onehot_k)`."""
        n, r = self.n_species, self.n_reactions
        k = self.reactant_index.shape[1]
        v = self._gather().partials(y, rates).reshape((r, k) + y.shape[1:])
        onehot = jax.nn.one_hot(self.reactant_index, n + 1, dtype=y.dtype)[..., :n]
        m = jnp.einsum("rkl,rks->rsl", v, onehot)
        return jnp.einsum("ir,rsl->isl", self.net_t.astype(y.dtype), m)

    def _factor(self, y, rates, lam):
        jac = self._dense_jacobian(y, rates)
        n = self.n_species
        lam3 = jnp.broadcast_to(lam, (1, y.shape[1])).reshape(1, 1, -1)
        return dense_lu_factor(lam3 * jnp.eye(n, dtype=y.dtype)[:, :, None] - jac)

    def _solve(self, factors, b):
        return dense_lu_solve(factors, b)


class SparseKinetics(AbstractKinetics):
    """The sparsity compiled in: reactant gathers, the net stoichiometry as a dense
    product or as sums over the reactions that change each species (whichever is
    cheaper), and a scheduled `SparseLU` for implicit steps."""

    reactants: ReactantGather
    net_dense: Float[Array, "species reactions"] | None
    net_sparse: GatherSum | None
    lu: SparseLU | DenseLU
    tables: Stoichiometry = eqx.field(static=True)
    n_species: int = eqx.field(static=True)
    n_reactions: int = eqx.field(static=True)

    @classmethod
    def build(cls, tables: Stoichiometry, dtype) -> "SparseKinetics":
        net = _net_matrix(tables)
        fraction = np.count_nonzero(net) / max(net.size, 1)
        small = max(tables.n_species, tables.n_reactions) <= DENSE_NET_SIZE
        dense = small or fraction >= DENSE_NET_FRACTION
        return cls(
            ReactantGather.build(tables),
            host_array(net, dtype) if dense else None,
            None
            if dense
            else GatherSum.build(
                tables.n_species,
                tables.n_reactions,
                tables.net_s,
                tables.net_r,
                tables.net_c,
                dtype=dtype,
            ),
            _lu_for(tables, dtype),
            tables,
            tables.n_species,
            tables.n_reactions,
        )

    def _flux(self, y, rates):
        return self.reactants.flux(y, rates)

    def _rhs(self, y, rates):
        f = self._flux(y, rates)
        if self.net_dense is not None:
            return self.net_dense.astype(y.dtype) @ f
        assert self.net_sparse is not None
        return self.net_sparse(f)

    def _factor(self, y, rates, lam):
        return self.lu.factor(lam, self.reactants.partials(y, rates))

    def _solve(self, factors, b):
        return self.lu.solve(factors, b)
