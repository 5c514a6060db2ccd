"""Mass-action kinetics: one abstract interface (`AbstractKinetics`: fluxes,
right-hand side, Jacobian, the linear solve of implicit steps) and its layouts."""

from ._base import (
    AbstractKinetics as AbstractKinetics,
    GatherSum as GatherSum,
    ReactantGather as ReactantGather,
)
from ._lu import SparseLU as SparseLU, fill_reducing_order as fill_reducing_order
from ._structure import (
    LayeredStructure as LayeredStructure,
    Stoichiometry as Stoichiometry,
    layered_structure as layered_structure,
)
from .general import DenseKinetics as DenseKinetics, SparseKinetics as SparseKinetics
from .layered import LayeredKinetics as LayeredKinetics, aligned_order as aligned_order
