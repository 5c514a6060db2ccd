"""BinaryConnect MLPs (Courbariaux et al. 2015) as used by Vasic et al. (2020).

`model`: the network (`BinaryDense`, `BinaryMLP`, `quantize`, the exact float64
`forward`); `train`: BinaryConnect training and the presets; `io`: model files and
checkpoints.
"""

from .io import (
    load_checkpoint as load_checkpoint,
    load_metadata as load_metadata,
    load_model as load_model,
    load_params as load_params,
    save_checkpoint as save_checkpoint,
    save_model as save_model,
)
from .model import (
    DEFAULT_THRESHOLD as DEFAULT_THRESHOLD,
    QUANTIZATIONS as QUANTIZATIONS,
    BinaryDense as BinaryDense,
    BinaryMLP as BinaryMLP,
    accuracy as accuracy,
    forward as forward,
    init_model as init_model,
    quantize as quantize,
    quantized_params as quantized_params,
)

# `train` names both the module and the function: the function wins (imported last).
from .train import (
    TrainConfig as TrainConfig,
    init_opt_state as init_opt_state,
    make_step as make_step,
    preset as preset,
    squared_hinge_loss as squared_hinge_loss,
    train as train,
)
