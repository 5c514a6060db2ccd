"""jaxcrn: compile binary-weight ReLU networks to rate-independent chemical reaction
networks, and simulate them fast with JAX and diffrax."""

from . import datasets as datasets
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


__version__ = "0.1.0"
