"""Layouts for any mass-action network: `DenseKinetics` and `SparseKinetics`.

Both gather the reactant concentrations of every reaction by index (padding slots
read a constant 1, so fluxes have finite gradients at zero concentration) and solve
implicit steps with a `SparseLU` whose schedule is computed from the stoichiometry
once. They differ in how fluxes become `dy/dt`: one dense matrix product with the
net stoichiometry (small networks, accelerators), or a sum over the few reactions
that change each species (large sparse networks).
"""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ._base import AbstractKinetics, GatherSum, ReactantGather
from ._lu import SparseLU
from ._structure import Stoichiometry


__all__ = ["DenseKinetics", "SparseKinetics"]


def _lu_for(tables: Stoichiometry, dtype) -> SparseLU:
    r, slot, row, coeff = tables.jacobian_terms
    pr = tables.padded_reactants()
    col = pr[r, slot] if r.size else np.zeros(0, np.int64)
    return SparseLU.build(
        tables.n_species, r * tables.max_order + slot, row, col, coeff, dtype=dtype
    )


class _MassAction(AbstractKinetics):
    reactants: eqx.AbstractVar[ReactantGather]
    lu: eqx.AbstractVar[SparseLU]

    def _flux(self, y, rates):
        return self.reactants.flux(y, rates)

    def _factor(self, y, rates, lam):
        return self.lu.factor(lam, self.reactants.partials(y, rates))

    def _solve(self, factors, b):
        return self.lu.solve(factors, b)


class DenseKinetics(_MassAction):
    """Dense net stoichiometry: `dy/dt = N^T f` as one matrix product.

    Example:
        >>> import jax.numpy as jnp
        >>> from jaxcrn import compile_crn, parse_crn
        >>> net = compile_crn(parse_crn("A + B -> C"), form="dense")
        >>> net.kinetics.rhs(jnp.array([1.0, 2.0, 0.0]), net.rates).tolist()
        [-2.0, -2.0, 2.0]
    """

    reactants: ReactantGather
    net_t: Float[Array, "species reactions"]
    lu: SparseLU
    n_species: int = eqx.field(static=True)
    n_reactions: int = eqx.field(static=True)

    @classmethod
    def build(cls, tables: Stoichiometry, dtype) -> "DenseKinetics":
        net = np.zeros((tables.n_species, tables.n_reactions))
        net[tables.net_s, tables.net_r] = tables.net_c
        return cls(
            ReactantGather.build(tables),
            jnp.asarray(net, dtype),
            _lu_for(tables, dtype),
            tables.n_species,
            tables.n_reactions,
        )

    def _rhs(self, y, rates):
        return self.net_t.astype(y.dtype) @ self._flux(y, rates)


class SparseKinetics(_MassAction):
    """Sparse net stoichiometry: each species sums the fluxes of the reactions that
    change it (rows grouped by their number of reactions)."""

    reactants: ReactantGather
    net: GatherSum
    lu: SparseLU
    n_species: int = eqx.field(static=True)
    n_reactions: int = eqx.field(static=True)

    @classmethod
    def build(cls, tables: Stoichiometry, dtype) -> "SparseKinetics":
        return cls(
            ReactantGather.build(tables),
            GatherSum.build(
                tables.n_species,
                tables.n_reactions,
                tables.net_s,
                tables.net_r,
                tables.net_c,
                dtype=dtype,
            ),
            _lu_for(tables, dtype),
            tables.n_species,
            tables.n_reactions,
        )

    def _rhs(self, y, rates):
        return self.net(self._flux(y, rates))
