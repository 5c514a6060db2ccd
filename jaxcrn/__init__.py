"""jaxcrn: compile binary-weight ReLU networks to rate-independent chemical reaction
networks, and simulate them fast with JAX and diffrax."""

from . import datasets as datasets
from ._compile import (
    DenseKinetics as DenseKinetics,
    ForcedNetwork as ForcedNetwork,
    LayeredKinetics as LayeredKinetics,
    MassActionNetwork as MassActionNetwork,
    SparseKinetics as SparseKinetics,
    compile_crn as compile_crn,
    layered_structure as layered_structure,
)
from ._crn import (
    CRN as CRN,
    CRNSyntaxError as CRNSyntaxError,
    Reaction as Reaction,
    Signal as Signal,
    format_crn as format_crn,
    load_crn as load_crn,
    parse_crn as parse_crn,
    save_crn as save_crn,
)
from ._differentiable import simulate_differentiable as simulate_differentiable
from ._fit import (
    Experiment as Experiment,
    FitResult as FitResult,
    fit_rates as fit_rates,
)
from ._nn import (
    BinaryDense as BinaryDense,
    BinaryMLP as BinaryMLP,
    TrainConfig as TrainConfig,
    accuracy as accuracy,
    forward as forward,
    init_model as init_model,
    init_opt_state as init_opt_state,
    load_checkpoint as load_checkpoint,
    load_metadata as load_metadata,
    load_model as load_model,
    load_params as load_params,
    make_step as make_step,
    preset as preset,
    quantize as quantize,
    quantized_params as quantized_params,
    save_checkpoint as save_checkpoint,
    save_model as save_model,
    squared_hinge_loss as squared_hinge_loss,
    train as train,
)
from ._nn2crn import (
    NoncompetitiveCheck as NoncompetitiveCheck,
    ReactionCounts as ReactionCounts,
    bind_inputs as bind_inputs,
    count_reactions as count_reactions,
    is_noncompetitive as is_noncompetitive,
    network_params as network_params,
    nn_to_crn as nn_to_crn,
    reduce_crn as reduce_crn,
    stable_state as stable_state,
)
from ._sbml import save_sbml as save_sbml, to_sbml as to_sbml
from ._simulate import (
    ConvergenceTimes as ConvergenceTimes,
    SimulationResult as SimulationResult,
    Status as Status,
    convergence_times as convergence_times,
    default_lanes as default_lanes,
    simulate as simulate,
    simulate_batch as simulate_batch,
)
from ._solver import Rodas5P as Rodas5P
from ._verify import (
    RateSample as RateSample,
    VerifyReport as VerifyReport,
    verify as verify,
)


__version__ = "0.1.0"
