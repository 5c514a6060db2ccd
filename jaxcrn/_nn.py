"""BinaryConnect MLPs (Courbariaux et al. 2015) as used by Vasic et al. (2020).

A `BinaryMLP` keeps real latent weights in [-1, 1] and computes with their quantised
values: binary (`W >= 0 -> +1`, else `-1`) or ternary (`|W| < threshold -> 0`, else
`sign(W)`, compared in float32). Gradients pass straight through the quantiser to the
latent weights. Hidden layers use ReLU, the output is affine, and there is no batch
norm: a CRN can compute exactly `relu(x @ W + b)` and nothing fancier.

Training minimises the squared hinge loss with Adam; latent weights move by the Adam
step times the Glorot scale `1 / sqrt(1.5 / (fan_in + fan_out))` and are clipped to
[-1, 1]. Trained networks are saved as `.npz` files of quantised weights `W0, b0, W1,
b1, ...` plus JSON metadata (`save_model`, `load_model`), and `forward` gives the
exact float64 computation that the compiled CRN must reproduce.
"""

import dataclasses
import functools
import json
import math
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray


__all__ = [
    "BinaryDense",
    "BinaryMLP",
    "TrainConfig",
    "accuracy",
    "forward",
    "init_model",
    "init_opt_state",
    "load_checkpoint",
    "load_metadata",
    "load_model",
    "load_params",
    "make_step",
    "preset",
    "quantize",
    "quantized_params",
    "save_checkpoint",
    "save_model",
    "squared_hinge_loss",
    "train",
]

QUANTIZATIONS = ("binary", "ternary")
DEFAULT_THRESHOLD = 0.15
_FORMAT = "jaxcrn.BinaryMLP"
_CHECKPOINT_FORMAT = "jaxcrn.BinaryMLP.checkpoint"


def _check_quantization(quantization: str, threshold: float) -> None:
    if quantization not in QUANTIZATIONS:
        raise ValueError(
            f"quantization must be 'binary' or 'ternary', got {quantization!r}."
        )
    if not (isinstance(threshold, int | float) and 0.0 < threshold <= 1.0):
        raise ValueError(
            f"threshold must be a number in (0, 1], got {threshold!r} (weights live "
            "in [-1, 1]; 0.15 is the paper's value)."
        )


# ---------------------------------------------------------------------- quantiser


def quantize(
    w: Float[ArrayLike, "..."],
    quantization: str = "binary",
    threshold: float = DEFAULT_THRESHOLD,
) -> Float[Array, "..."]:
    """Quantise latent weights to {-1, +1} (binary) or {-1, 0, +1} (ternary).

    Binary: `w >= 0 -> +1`, else `-1`. Ternary: `|w| < threshold -> 0`, else
    `sign(w)`, with `|w|` and `threshold` both rounded to float32 before comparing
    (as the float32 reference code did), so a weight exactly at `float32(threshold)`
    is kept. No gradient flows through this function; `BinaryDense` adds the
    straight-through estimator.

    Args:
        w: latent weights, any shape.
        quantization: `"binary"` or `"ternary"`.
        threshold: the ternary zero threshold, in (0, 1]; ignored for binary.

    Returns:
        An array of the shape and dtype of `w` holding -1, 0 or +1.

    Example:
        >>> import jax.numpy as jnp
        >>> from jaxcrn import quantize
        >>> quantize(jnp.array([-0.3, 0.0, 0.1, 0.2]), "ternary", 0.15).tolist()
        [-1.0, 0.0, 0.0, 1.0]
    """
    _check_quantization(quantization, threshold)
    return _quantize(jnp.asarray(w), quantization, float(threshold))


@functools.partial(jax.jit, static_argnums=(1, 2))
def _quantize(w: Array, quantization: str, threshold: float) -> Array:
    one = jnp.ones((), w.dtype)
    if quantization == "binary":
        return jnp.where(w >= 0, one, -one)
    small = jnp.abs(w).astype(jnp.float32) < jnp.float32(threshold)
    return jnp.where(small, jnp.zeros((), w.dtype), jnp.where(w < 0, -one, one))


def _straight_through(w: Array, q: Array) -> Array:
    # The value is exactly q (w - w == 0 in floating point); the gradient is identity.
    return q + (w - jax.lax.stop_gradient(w))


def _glorot_scale(fan_in: int, fan_out: int) -> float:
    return 1.0 / math.sqrt(1.5 / (fan_in + fan_out))


# -------------------------------------------------------------------------- model


class BinaryDense(eqx.Module):
    """A dense layer `x @ quantize(weight) + bias` with straight-through gradients.

    Attributes:
        weight: latent real weights, shape `(fan_in, fan_out)`, in [-1, 1].
        bias: real biases, shape `(fan_out,)`.
        quantization: `"binary"` or `"ternary"` (static).
        threshold: the ternary zero threshold (static).

    Example:
        >>> import jax.numpy as jnp
        >>> from jaxcrn import BinaryDense
        >>> layer = BinaryDense(jnp.array([[0.5], [-0.2]]), jnp.array([0.25]))
        >>> layer(jnp.array([1.0, 2.0])).tolist()
        [-0.75]
    """

    weight: Float[Array, "fan_in fan_out"]
    bias: Float[Array, " fan_out"]
    quantization: str = eqx.field(static=True, default="binary")
    threshold: float = eqx.field(static=True, default=DEFAULT_THRESHOLD)

    def __check_init__(self):
        _check_quantization(self.quantization, self.threshold)
        if self.weight.ndim != 2 or self.bias.shape != self.weight.shape[1:]:
            raise ValueError(
                f"weight has shape {self.weight.shape} and bias {self.bias.shape}; "
                "expected (fan_in, fan_out) and (fan_out,)."
            )
        if self.weight.dtype != self.bias.dtype:
            raise ValueError(
                f"weight is {self.weight.dtype} but bias is {self.bias.dtype}; "
                "use one floating dtype."
            )

    @property
    def fan_in(self) -> int:
        return int(self.weight.shape[0])

    @property
    def fan_out(self) -> int:
        return int(self.weight.shape[1])

    def quantized_weight(self) -> Float[Array, "fan_in fan_out"]:
        """The quantised weights; gradients flow straight through to `weight`."""
        q = quantize(self.weight, self.quantization, self.threshold)
        return _straight_through(self.weight, q)

    def __call__(self, x: Float[Array, " fan_in"]) -> Float[Array, " fan_out"]:
        return x @ self.quantized_weight() + self.bias


def _dropout(x: Array, p: float, key: PRNGKeyArray) -> Array:
    keep = jr.bernoulli(key, 1.0 - p, x.shape)
    return jnp.where(keep, x / (1.0 - p), jnp.zeros((), x.dtype))


class BinaryMLP(eqx.Module):
    """A BinaryConnect MLP: `BinaryDense` layers, ReLU between them, affine output.

    Call it on one sample; use `jax.vmap` for a batch. Dropout (inverted: kept units
    are scaled by `1 / (1 - p)`) on the inputs and on every hidden layer is applied
    only when a `key` is given, i.e. during training.

    Attributes:
        layers: the dense layers, all with the same quantisation.
        dropout_in: dropout rate on the inputs (static).
        dropout_hidden: dropout rate after each hidden ReLU (static).

    Example:
        >>> import jax.random as jr
        >>> from jaxcrn import init_model
        >>> model = init_model((4, 8, 3), key=jr.PRNGKey(0))
        >>> model.layer_sizes, model.quantization
        ((4, 8, 3), 'binary')
    """

    layers: tuple[BinaryDense, ...]
    dropout_in: float = eqx.field(static=True, default=0.0)
    dropout_hidden: float = eqx.field(static=True, default=0.0)

    def __check_init__(self):
        if not self.layers:
            raise ValueError("a BinaryMLP needs at least one layer.")
        first = self.layers[0]
        for i, layer in enumerate(self.layers):
            if (layer.quantization, layer.threshold) != (
                first.quantization,
                first.threshold,
            ):
                raise ValueError(
                    f"layer {i} has quantization {layer.quantization!r} with "
                    f"threshold {layer.threshold} but layer 0 has "
                    f"{first.quantization!r} with {first.threshold}; all layers must "
                    "agree."
                )
            if i and layer.fan_in != self.layers[i - 1].fan_out:
                raise ValueError(
                    f"layer {i} takes {layer.fan_in} inputs but layer {i - 1} has "
                    f"{self.layers[i - 1].fan_out} outputs."
                )
        for name in ("dropout_in", "dropout_hidden"):
            p = getattr(self, name)
            if not (isinstance(p, int | float) and 0.0 <= p < 1.0):
                raise ValueError(f"{name} must be in [0, 1), got {p!r}.")

    @property
    def quantization(self) -> str:
        return self.layers[0].quantization

    @property
    def threshold(self) -> float:
        return self.layers[0].threshold

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        """Widths from input to output, e.g. `(4, 8, 3)`."""
        return (self.layers[0].fan_in, *(layer.fan_out for layer in self.layers))

    def __call__(
        self, x: Float[ArrayLike, " features"], *, key: PRNGKeyArray | None = None
    ) -> Float[Array, " classes"]:
        x = jnp.asarray(x).astype(self.layers[0].weight.dtype)
        keys = (
            [None] * len(self.layers)
            if key is None
            else jr.split(key, len(self.layers))
        )
        if key is not None and self.dropout_in > 0:
            x = _dropout(x, self.dropout_in, keys[0])
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < last:
                x = jax.nn.relu(x)
                if key is not None and self.dropout_hidden > 0:
                    x = _dropout(x, self.dropout_hidden, keys[i + 1])
        return x


def init_model(
    layer_sizes: Sequence[int],
    *,
    key: PRNGKeyArray,
    quantization: str = "binary",
    threshold: float = DEFAULT_THRESHOLD,
    dropout_in: float = 0.0,
    dropout_hidden: float = 0.0,
    dtype: Any = jnp.float32,
) -> BinaryMLP:
    """A fresh `BinaryMLP`: latent weights U(-1, 1), biases 0.

    Args:
        layer_sizes: widths from input to output, e.g. `(4, 8, 3)`.
        key: a JAX PRNG key.
        quantization: `"binary"` or `"ternary"`.
        threshold: the ternary zero threshold in (0, 1] (compared in float32).
        dropout_in, dropout_hidden: training-time dropout rates in [0, 1).
        dtype: dtype of the latent parameters (float32 trains fastest; the quantised
            weights are exact in any dtype).

    Example:
        >>> import jax.random as jr
        >>> from jaxcrn import init_model
        >>> model = init_model([10, 32, 4], key=jr.PRNGKey(0), quantization="ternary")
        >>> model.layers[0].weight.shape, model.threshold
        ((10, 32), 0.15)
    """
    sizes = tuple(int(s) for s in layer_sizes)
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(
            f"layer_sizes must list at least an input and an output width, all >= 1; "
            f"got {tuple(layer_sizes)}."
        )
    _check_quantization(quantization, threshold)
    keys = jr.split(key, len(sizes) - 1)
    layers = tuple(
        BinaryDense(
            jr.uniform(k, (m, n), dtype, minval=-1.0, maxval=1.0),
            jnp.zeros((n,), dtype),
            quantization,
            float(threshold),
        )
        for k, m, n in zip(keys, sizes[:-1], sizes[1:])
    )
    return BinaryMLP(layers, float(dropout_in), float(dropout_hidden))


# ------------------------------------------------------------ exact forward pass

Params = list[tuple[np.ndarray, np.ndarray]]


def quantized_params(model: BinaryMLP) -> Params:
    """The network as plain float64 arrays: `[(W0, b0), (W1, b1), ...]`.

    `W_i` has shape `(fan_in, fan_out)` and values in {-1., 0., 1.}; `b_i` has shape
    `(fan_out,)`. These are exactly what `save_model` writes and what the CRN computes.

    Example:
        >>> import jax.random as jr
        >>> from jaxcrn import init_model, quantized_params
        >>> model = init_model((4, 8, 3), key=jr.PRNGKey(0))
        >>> (W0, b0), (W1, b1) = quantized_params(model)
        >>> W0.shape, sorted(set(W0.ravel().tolist()))
        ((4, 8), [-1.0, 1.0])
    """
    out = []
    for layer in model.layers:
        w = quantize(layer.weight, layer.quantization, layer.threshold)
        out.append(
            (np.asarray(w, dtype=np.float64), np.asarray(layer.bias, dtype=np.float64))
        )
    return out


def _check_params(params: Sequence) -> Params:
    out = []
    for i, pair in enumerate(params):
        try:
            w, b = pair
        except (TypeError, ValueError):
            raise ValueError(f"params[{i}] must be a pair (W, b).") from None
        w, b = np.asarray(w, np.float64), np.asarray(b, np.float64)
        if w.ndim != 2 or b.shape != w.shape[1:]:
            raise ValueError(
                f"layer {i}: W has shape {w.shape} and b {b.shape}; expected "
                "(fan_in, fan_out) and (fan_out,)."
            )
        if i and w.shape[0] != out[-1][0].shape[1]:
            raise ValueError(
                f"layer {i}: W has {w.shape[0]} rows but layer {i - 1} has "
                f"{out[-1][0].shape[1]} outputs."
            )
        out.append((w, b))
    if not out:
        raise ValueError("the network has no layers.")
    return out


def forward(
    model_or_params: BinaryMLP | Sequence | str | os.PathLike,
    x: Float[ArrayLike, "*batch features"],
) -> np.ndarray:
    """The exact quantised forward pass in float64 numpy: what the CRN must compute.

    `h = x @ W_i + b_i` layer by layer, with ReLU between layers and none at the end.

    Args:
        model_or_params: a `BinaryMLP`, the list from `quantized_params`, or the path
            of a saved model (read exactly, without rounding the biases).
        x: inputs, shape `(batch, features)` (or `(features,)` for one sample).

    Returns:
        The outputs, float64, shape `(batch, classes)` (or `(classes,)`).

    Example:
        >>> import numpy as np
        >>> from jaxcrn import forward
        >>> params = [(np.array([[1.0, -1.0]]), np.array([0.0, 0.5])),
        ...           (np.array([[1.0], [1.0]]), np.array([-1.0]))]
        >>> forward(params, np.array([[2.0], [-2.0]])).tolist()
        [[1.0], [1.5]]
    """
    if isinstance(model_or_params, BinaryMLP):
        params = quantized_params(model_or_params)
    elif isinstance(model_or_params, str | os.PathLike):
        params = load_params(model_or_params)
    else:
        params = _check_params(model_or_params)
    h = np.asarray(x, dtype=np.float64)
    single = h.ndim == 1
    h = np.atleast_2d(h)
    if h.ndim != 2 or h.shape[1] != params[0][0].shape[0]:
        raise ValueError(
            f"x has shape {np.shape(x)}; the network expects (batch, "
            f"{params[0][0].shape[0]})."
        )
    for i, (w, b) in enumerate(params):
        h = h @ w + b
        if i < len(params) - 1:
            h = np.maximum(h, 0.0)
    return h[0] if single else h


def accuracy(
    model: BinaryMLP | Sequence | str | os.PathLike,
    x: Float[ArrayLike, "batch features"],
    y: Int[ArrayLike, " batch"],
) -> float:
    """Fraction of samples whose largest output (exact float64 `forward`) is `y`.

    `model` is anything `forward` accepts: a `BinaryMLP`, a parameter list or the
    path of a saved model.

    Example:
        >>> import jax.random as jr
        >>> from jaxcrn import accuracy, datasets, init_model
        >>> data = datasets.iris()
        >>> model = init_model((4, 8, 3), key=jr.PRNGKey(0))
        >>> 0.0 <= accuracy(model, data.test.x, data.test.y) <= 1.0
        True
    """
    y = np.asarray(y)
    pred = np.argmax(forward(model, x), axis=-1)
    if pred.shape != y.shape:
        raise ValueError(f"y has shape {y.shape}; expected {pred.shape}.")
    return float(np.mean(pred == y)) if y.size else float("nan")


# ---------------------------------------------------------------------- training


def squared_hinge_loss(
    outputs: Float[Array, "batch classes"], labels: Int[ArrayLike, " batch"]
) -> Float[Array, ""]:
    """`mean(max(0, 1 - t * outputs) ** 2)` with targets `t = 2 * onehot(labels) - 1`.

    Example:
        >>> import jax.numpy as jnp
        >>> from jaxcrn import squared_hinge_loss
        >>> float(squared_hinge_loss(jnp.array([[0.5, -2.0]]), jnp.array([0])))
        0.125
    """
    t = 2 * jax.nn.one_hot(labels, outputs.shape[-1], dtype=outputs.dtype) - 1
    return jnp.mean(jnp.square(jnp.maximum(0, 1 - t * outputs)))


_ADAM = optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-8)


def _loss_and_correct(model: BinaryMLP, x, y, key, loss_scale: float):
    keys = jr.split(key, x.shape[0])
    outputs = jax.vmap(lambda xi, ki: model(xi, key=ki))(x, keys)
    correct = jnp.sum(jnp.argmax(outputs, axis=-1) == y)
    return squared_hinge_loss(outputs / loss_scale, y), correct


def _step(model: BinaryMLP, opt_state, x, y, lr, key, loss_scale: float = 1.0):
    (loss, correct), grads = eqx.filter_value_and_grad(_loss_and_correct, has_aux=True)(
        model, x, y, key, loss_scale
    )
    # optax computes `b1 ** count` (float ** int32), which strict promotion rejects.
    with jax.numpy_dtype_promotion("standard"):
        directions, opt_state = _ADAM.update(
            grads, opt_state, eqx.filter(model, eqx.is_array)
        )
    layers = []
    for layer, d in zip(model.layers, directions.layers):
        scale = _glorot_scale(layer.fan_in, layer.fan_out)
        # W_adam = W - lr * d;  W <- clip(W + scale * (W_adam - W), -1, 1)
        weight = jnp.clip(layer.weight - (scale * lr) * d.weight, -1, 1)
        bias = layer.bias - lr * d.bias
        layers.append(eqx.tree_at(lambda l: (l.weight, l.bias), layer, (weight, bias)))
    model = eqx.tree_at(lambda m: m.layers, model, tuple(layers))
    return model, opt_state, loss, correct


@eqx.filter_jit
def make_step(
    model: BinaryMLP,
    opt_state: Any,
    x: Float[Array, "batch features"],
    y: Int[Array, " batch"],
    lr: Float[ArrayLike, ""],
    key: PRNGKeyArray,
    *,
    loss_scale: float = 1.0,
) -> tuple[BinaryMLP, Any, Float[Array, ""]]:
    """One BinaryConnect step on a mini-batch: returns `(model, opt_state, loss)`.

    The gradient of the squared hinge loss with respect to the quantised weights
    (straight through to the latent ones) drives Adam; latent weights move by
    `scale * (W_adam - W)` with `scale = 1 / sqrt(1.5 / (fan_in + fan_out))` and are
    clipped to [-1, 1]; biases take the plain Adam step. `opt_state` comes from
    `init_opt_state(model)`. Pass `lr` as an array so that it does not recompile.
    `loss_scale` divides the outputs inside the loss (see `TrainConfig`).

    Example:
        >>> import jax.numpy as jnp, jax.random as jr
        >>> from jaxcrn import datasets, init_model, init_opt_state, make_step
        >>> data = datasets.iris()
        >>> model = init_model((4, 8, 3), key=jr.PRNGKey(0))
        >>> x = jnp.asarray(data.train.x[:16], jnp.float32)
        >>> y = jnp.asarray(data.train.y[:16])
        >>> model, state, loss = make_step(model, init_opt_state(model), x, y,
        ...                                jnp.float32(0.01), jr.PRNGKey(1))
        >>> bool(jnp.abs(model.layers[0].weight).max() <= 1)
        True
    """
    lr = jnp.asarray(lr, model.layers[0].weight.dtype)
    model, opt_state, loss, _ = _step(model, opt_state, x, y, lr, key, loss_scale)
    return model, opt_state, loss


def init_opt_state(model: BinaryMLP) -> Any:
    """The Adam state for `make_step` (optax `scale_by_adam` over the arrays).

    Example:
        >>> import jax.random as jr
        >>> from jaxcrn import init_model, init_opt_state
        >>> state = init_opt_state(init_model((4, 8, 3), key=jr.PRNGKey(0)))
    """
    return _ADAM.init(eqx.filter(model, eqx.is_array))


def _epoch(model, opt_state, x, y, lr, key, batch_size: int, loss_scale: float):
    """One shuffled pass of `_step` over `x // batch_size` mini-batches."""
    n_batches = x.shape[0] // batch_size
    kperm, kdrop = jr.split(key)
    order = jr.permutation(kperm, x.shape[0])[: n_batches * batch_size]
    order = order.reshape(n_batches, batch_size)
    params, static = eqx.partition(model, eqx.is_array)

    def body(carry, inp):
        params, opt_state = carry
        idx, k = inp
        m, opt_state, loss, correct = _step(
            eqx.combine(params, static), opt_state, x[idx], y[idx], lr, k, loss_scale
        )
        return (eqx.filter(m, eqx.is_array), opt_state), (loss, correct)

    (params, opt_state), (losses, corrects) = jax.lax.scan(
        body, (params, opt_state), (order, jr.split(kdrop, n_batches))
    )
    return eqx.combine(params, static), opt_state, jnp.mean(losses), jnp.sum(corrects)


def _count_correct(model, x, y):
    return jnp.sum(jnp.argmax(jax.vmap(model)(x), axis=-1) == y)


@eqx.filter_jit
def _train_chunk(
    state, xt, yt, xv, yv, lrs, epochs, active, key, batch_size: int, loss_scale: float
):
    """Run `len(lrs)` epochs (those with `active` False are skipped), keeping the
    parameters of the best epoch: highest validation accuracy, ties broken by
    training accuracy, then by the later epoch."""
    model, opt_state, best_model, best_v, best_t, best_epoch = state
    params, static = eqx.partition(model, eqx.is_array)
    best_params = eqx.filter(best_model, eqx.is_array)

    def run(c, lr, epoch):
        params, opt_state, best_params, best_v, best_t, best_epoch = c
        m, opt_state, loss, _ = _epoch(
            eqx.combine(params, static),
            opt_state,
            xt,
            yt,
            lr,
            jr.fold_in(key, epoch),
            batch_size,
            loss_scale,
        )
        params = eqx.filter(m, eqx.is_array)
        vcorrect = _count_correct(m, xv, yv)
        tcorrect = _count_correct(m, xt, yt)
        better = (vcorrect > best_v) | ((vcorrect == best_v) & (tcorrect >= best_t))
        best_params = jax.tree.map(
            lambda a, b: jnp.where(better, a, b), params, best_params
        )
        best_v = jnp.where(better, vcorrect, best_v)
        best_t = jnp.where(better, tcorrect, best_t)
        best_epoch = jnp.where(better, epoch + 1, best_epoch)
        c = (params, opt_state, best_params, best_v, best_t, best_epoch)
        return c, (loss, tcorrect, vcorrect)

    def skip(c, lr, epoch):
        zero = jnp.zeros((), best_v.dtype)
        return c, (jnp.full((), jnp.nan, lrs.dtype), zero, zero)

    def body(c, inp):
        lr, epoch, act = inp
        return jax.lax.cond(act, run, skip, c, lr, epoch)

    carry = (params, opt_state, best_params, best_v, best_t, best_epoch)
    carry, per_epoch = jax.lax.scan(body, carry, (lrs, epochs, active))
    params, opt_state, best_params, best_v, best_t, best_epoch = carry
    state = (
        eqx.combine(params, static),
        opt_state,
        eqx.combine(best_params, static),
        best_v,
        best_t,
        best_epoch,
    )
    return state, per_epoch


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of `train`.

    Attributes:
        epochs: passes over the training set.
        batch_size: mini-batch size; each epoch uses `n // batch_size` shuffled
            batches (the remainder is left out, a different part each epoch).
        lr_start, lr_end: the learning rate decays exponentially, epoch `e`
            (0-based) using `lr_start * (lr_end / lr_start) ** (e / epochs)`.
        dropout_in, dropout_hidden: dropout rates; `None` keeps the model's.
        seed: seeds the shuffling and dropout.
        keep_best: return the parameters of the epoch with the best validation
            accuracy (ties: the best training accuracy, then the later epoch),
            else those of the last epoch.
        restarts: train this many times, first from the given model, then from
            fresh U(-1, 1) latent weights (zero biases), and return the run with
            the best validation accuracy (ties: the earlier run). Cheap insurance
            against the poor local optima of small binary networks.
        loss_scale: train on `squared_hinge_loss(outputs / loss_scale, labels)`.
            1 (default) is the paper's loss. Without batch norm, binary networks
            produce outputs of order `sqrt(width)` per layer, so a margin of 1 is
            tiny; a larger scale asks for a proportionally larger margin. The
            network (and its argmax) is unchanged; only training differs.

    Example:
        >>> from jaxcrn import TrainConfig
        >>> TrainConfig(epochs=10).lr_at(0)
        0.01
    """

    epochs: int = 100
    batch_size: int = 16
    lr_start: float = 0.01
    lr_end: float = 0.001
    dropout_in: float | None = None
    dropout_hidden: float | None = None
    seed: int = 0
    keep_best: bool = True
    restarts: int = 1
    loss_scale: float = 1.0

    def __post_init__(self):
        if not (isinstance(self.epochs, int) and self.epochs >= 1):
            raise ValueError(f"epochs must be an integer >= 1, got {self.epochs!r}.")
        if not (
            isinstance(self.loss_scale, int | float)
            and self.loss_scale > 0
            and math.isfinite(self.loss_scale)
        ):
            raise ValueError(
                f"loss_scale must be a positive number, got {self.loss_scale!r}."
            )
        if not (isinstance(self.restarts, int) and self.restarts >= 1):
            raise ValueError(
                f"restarts must be an integer >= 1, got {self.restarts!r}."
            )
        if not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            raise ValueError(
                f"batch_size must be an integer >= 1, got {self.batch_size!r}."
            )
        for name in ("lr_start", "lr_end"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and v > 0 and math.isfinite(v)):
                raise ValueError(f"{name} must be a positive number, got {v!r}.")
        for name in ("dropout_in", "dropout_hidden"):
            p = getattr(self, name)
            if p is not None and not (isinstance(p, int | float) and 0 <= p < 1):
                raise ValueError(f"{name} must be in [0, 1) or None, got {p!r}.")

    def lr_at(self, epoch: int) -> float:
        """The learning rate of `epoch` (0-based)."""
        return self.lr_start * (self.lr_end / self.lr_start) ** (epoch / self.epochs)


class _Progress:
    """One self-overwriting status line on a terminal; silent otherwise."""

    def __init__(self, total: int, enabled: bool, stream=None):
        self.stream = sys.stdout if stream is None else stream
        self.total = total
        isatty = getattr(self.stream, "isatty", lambda: False)
        self.enabled = enabled and isatty()
        self.last = 0.0
        self.width = 0
        self.prefix = ""

    def update(
        self,
        epoch: int,
        loss: float,
        train_acc: float,
        valid_acc: float,
        best: tuple[int, float],
        force: bool = False,
    ) -> None:
        now = time.perf_counter()
        if not self.enabled or (not force and now - self.last < 0.1):
            return
        self.last = now
        filled = int(20 * epoch / self.total)
        line = self.prefix + (
            f"[{'#' * filled}{'.' * (20 - filled)}] epoch {epoch}/{self.total}  "
            f"loss {loss:.4f}  train {100 * train_acc:.2f}%  "
            f"valid {100 * valid_acc:.2f}%  best {100 * best[1]:.2f}% @ {best[0]}"
        )
        self.stream.write("\r" + line.ljust(self.width))
        self.stream.flush()
        self.width = len(line)

    def close(self) -> None:
        if self.enabled and self.width:
            self.stream.write("\n")
            self.stream.flush()


def _as_xy(split) -> tuple[np.ndarray, np.ndarray]:
    if hasattr(split, "x") and hasattr(split, "y"):
        return np.asarray(split.x), np.asarray(split.y)
    x, y = split
    return np.asarray(x), np.asarray(y)


def train(
    model: BinaryMLP,
    data: Any,
    config: TrainConfig = TrainConfig(),
    *,
    quiet: bool = False,
    callback: Callable[[int, dict], None] | None = None,
) -> tuple[BinaryMLP, dict]:
    """Train a `BinaryMLP` with BinaryConnect: squared hinge loss, Adam, clipping.

    Each epoch shuffles the training set (seeded by `config.seed`), scans the
    BinaryConnect step (`make_step`) over its mini-batches, then measures training
    and validation accuracy; the parameters of the best epoch (highest validation
    accuracy, ties broken by training accuracy, which matters for small validation
    sets, then by the later epoch) are kept. Several epochs run in one
    jitted call. On a terminal a progress line shows
    epoch, loss, training and validation accuracy (none when `quiet` or when stdout
    is not a TTY).

    Args:
        model: the network to train (e.g. from `init_model`).
        data: a `jaxcrn.datasets.Dataset` (its train and valid splits are used), or
            a pair `((x_train, y_train), (x_valid, y_valid))`.
        config: a `TrainConfig`.
        quiet: no progress line.
        callback: called as `callback(epochs_done, history)` after every jitted
            chunk of epochs (about 512 steps; one epoch for MNIST).

    Returns:
        `(model, history)`. `history` has per-epoch lists `loss` (mean mini-batch
        loss), `train_acc` and `valid_acc` (after the epoch, evaluation mode) and
        `lr`, all of the returned run, plus `best_epoch` (1-based),
        `best_valid_acc`, `best_train_acc`, `restart` (which run was returned),
        `restart_scores` (each run's validation and training accuracy) and
        `seconds`.

    Example:
        >>> import jax.random as jr
        >>> from jaxcrn import TrainConfig, accuracy, datasets, init_model, train
        >>> data = datasets.iris()
        >>> model = init_model((4, 8, 3), key=jr.PRNGKey(0))
        >>> model, history = train(model, data, TrainConfig(epochs=50), quiet=True)
        >>> accuracy(model, data.test.x, data.test.y) > 0.85
        True
    """
    start = time.perf_counter()
    if hasattr(data, "train") and hasattr(data, "valid"):
        (xt, yt), (xv, yv) = _as_xy(data.train), _as_xy(data.valid)
    else:
        try:
            (xt, yt), (xv, yv) = (_as_xy(s) for s in data)
        except (TypeError, ValueError):
            raise ValueError(
                "data must be a Dataset or ((x_train, y_train), (x_valid, y_valid))."
            ) from None
    n_in, n_out = model.layer_sizes[0], model.layer_sizes[-1]
    for name, x, y in (("train", xt, yt), ("valid", xv, yv)):
        if x.ndim != 2 or x.shape[1] != n_in or y.shape != (x.shape[0],):
            raise ValueError(
                f"{name} inputs have shape {x.shape} and labels {y.shape}; the model "
                f"expects ({x.shape[0] if x.ndim else 'n'}, {n_in}) and (n,)."
            )
        if y.size and (y.min() < 0 or y.max() >= n_out):
            raise ValueError(
                f"{name} labels range over {y.min()}..{y.max()} but the model has "
                f"{n_out} outputs."
            )
    if xt.shape[0] < config.batch_size:
        raise ValueError(
            f"batch_size {config.batch_size} exceeds the {xt.shape[0]} training "
            "samples."
        )
    if config.dropout_in is not None or config.dropout_hidden is not None:
        model = BinaryMLP(
            model.layers,
            model.dropout_in if config.dropout_in is None else float(config.dropout_in),
            model.dropout_hidden
            if config.dropout_hidden is None
            else float(config.dropout_hidden),
        )
    dtype = model.layers[0].weight.dtype
    arrays = (
        jnp.asarray(xt, dtype),
        jnp.asarray(yt),
        jnp.asarray(xv, dtype),
        jnp.asarray(yv),
    )
    results = []
    progress = _Progress(config.epochs, not quiet)
    try:
        for r in range(config.restarts):
            key, init_key = jr.split(jr.fold_in(jr.PRNGKey(config.seed), r))
            start_model = _reinit(model, init_key) if r else model
            progress.prefix = (
                f"run {r + 1}/{config.restarts} " if config.restarts > 1 else ""
            )
            results.append(
                _train_run(start_model, arrays, config, key, progress, callback)
            )
    finally:
        progress.close()
    score = [
        (h["best_valid_acc"], h["best_train_acc"])
        if config.keep_best
        else (h["valid_acc"][-1], h["train_acc"][-1])
        for _, _, h in results
    ]
    r = max(range(len(score)), key=lambda i: (score[i], -i))  # ties: earlier run
    last, best_model, history = results[r]
    history["restart"] = r
    history["restart_scores"] = score
    history["seconds"] = time.perf_counter() - start
    return (best_model if config.keep_best else last), history


def _reinit(model: BinaryMLP, key: PRNGKeyArray) -> BinaryMLP:
    """The same architecture with fresh U(-1, 1) latent weights and zero biases."""
    fresh = init_model(
        model.layer_sizes,
        key=key,
        quantization=model.quantization,
        threshold=model.threshold,
        dtype=model.layers[0].weight.dtype,
    )
    return BinaryMLP(fresh.layers, model.dropout_in, model.dropout_hidden)


def _train_run(model, arrays, config, key, progress, callback):
    xt_, yt_, xv_, yv_ = arrays
    dtype = model.layers[0].weight.dtype
    n_batches = xt_.shape[0] // config.batch_size
    n_train, n_valid = max(yt_.shape[0], 1), max(yv_.shape[0], 1)
    # Several epochs per jitted call (about 512 steps), padded to a fixed length so
    # that the last chunk does not recompile.
    chunk = int(min(config.epochs, max(1, 512 // n_batches)))
    counter = jnp.zeros((), yt_.dtype)
    state = (model, init_opt_state(model), model, counter - 1, counter - 1, counter)
    history: dict[str, Any] = {"loss": [], "train_acc": [], "valid_acc": [], "lr": []}
    best = (0, 0.0)
    for first in range(0, config.epochs, chunk):
        epochs = np.arange(first, first + chunk)
        lrs = [config.lr_at(min(int(e), config.epochs - 1)) for e in epochs]
        state, (loss, correct, vcorrect) = _train_chunk(
            state,
            xt_,
            yt_,
            xv_,
            yv_,
            jnp.asarray(lrs, dtype),
            jnp.asarray(epochs),
            jnp.asarray(epochs < config.epochs),
            key,
            config.batch_size,
            float(config.loss_scale),
        )
        n = min(chunk, config.epochs - first)
        history["loss"] += np.asarray(loss[:n], np.float64).tolist()
        history["train_acc"] += (np.asarray(correct[:n]) / n_train).tolist()
        history["valid_acc"] += (np.asarray(vcorrect[:n]) / n_valid).tolist()
        history["lr"] += lrs[:n]
        best = (int(state[5]), int(state[3]) / n_valid)
        progress.update(
            first + n,
            history["loss"][-1],
            history["train_acc"][-1],
            history["valid_acc"][-1],
            best,
            force=first + n == config.epochs,
        )
        if callback is not None:
            callback(first + n, history)
    history["best_epoch"], history["best_valid_acc"] = best
    history["best_train_acc"] = int(state[4]) / n_train
    return state[0], state[2], history


# ---------------------------------------------------------------------- presets

_PRESETS: dict[tuple[str, str], tuple[tuple[int, ...], TrainConfig]] = {
    ("iris", "binary"): (
        (8,),
        TrainConfig(epochs=3000, batch_size=16, lr_start=1e-3, lr_end=1e-4, restarts=3),
    ),
    ("iris", "ternary"): (
        (8,),
        TrainConfig(epochs=3000, batch_size=16, lr_start=1e-3, lr_end=1e-4, restarts=3),
    ),
    ("virus", "binary"): (
        (32,),
        TrainConfig(epochs=1000, batch_size=16, lr_start=1e-3, lr_end=1e-5, restarts=4),
    ),
    ("virus", "ternary"): (
        (32,),
        TrainConfig(epochs=1000, batch_size=16, lr_start=1e-3, lr_end=1e-5, restarts=4),
    ),
    ("mnist14", "binary"): (
        (512, 512),
        TrainConfig(
            epochs=250, batch_size=100, lr_start=3e-5, lr_end=3e-6, loss_scale=64.0
        ),
    ),
    ("mnist14", "ternary"): (
        (512, 512),
        TrainConfig(
            epochs=250, batch_size=100, lr_start=3e-5, lr_end=3e-6, loss_scale=64.0
        ),
    ),
}


def preset(
    dataset: str, quantization: str = "binary"
) -> tuple[tuple[int, ...], TrainConfig]:
    """The hidden widths and `TrainConfig` that reach the paper's accuracy.

    Returns:
        `(hidden, config)`, e.g. `((8,), TrainConfig(...))` for iris.

    Example:
        >>> from jaxcrn import preset
        >>> preset("virus")[0]
        (32,)
    """
    if (dataset, quantization) not in _PRESETS:
        raise ValueError(
            f"no preset for dataset {dataset!r} with quantization {quantization!r}; "
            "datasets: iris, virus, mnist14; quantization: binary, ternary."
        )
    return _PRESETS[dataset, quantization]


# ------------------------------------------------------------------ save / load


def _json_default(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    raise TypeError(f"metadata value {obj!r} of type {type(obj).__name__} is not JSON.")


def _model_metadata(model: BinaryMLP) -> dict:
    return {
        "format": _FORMAT,
        "version": 1,
        "quantization": model.quantization,
        "threshold": model.threshold,
        "layer_sizes": list(model.layer_sizes),
        "dropout_in": model.dropout_in,
        "dropout_hidden": model.dropout_hidden,
    }


def save_model(
    model: BinaryMLP,
    path: str | os.PathLike,
    *,
    metadata: dict | None = None,
    overwrite: bool = False,
) -> None:
    """Save the quantised network as `.npz`: `W0, b0, W1, b1, ...` and `metadata`.

    `W_i` (int8, shape `(fan_in, fan_out)`) holds the quantised weights in
    {-1, 0, 1}; `b_i` the float64 biases; `metadata` is a 0-d string array of JSON
    with the quantisation, threshold, layer sizes and dropout rates, merged with
    your `metadata` (dataset, preprocessing, accuracies, ...). Latent weights are not
    stored; use `save_checkpoint` to resume training later.

    Args:
        model: the trained network.
        path: the file to write (exactly this name; `.npz` is not appended).
        metadata: extra JSON-able information.
        overwrite: replace an existing file.

    Example:
        >>> import jax.random as jr
        >>> from jaxcrn import init_model, load_model, save_model
        >>> model = init_model((4, 8, 3), key=jr.PRNGKey(0))
        >>> save_model(model, "/tmp/iris-doc.npz", metadata={"dataset": "iris"},
        ...            overwrite=True)
        >>> load_model("/tmp/iris-doc.npz").layer_sizes
        (4, 8, 3)
    """
    meta = dict(metadata or {})
    for k, v in _model_metadata(model).items():
        if (
            k in meta
            and meta[k] != v
            and not (isinstance(v, list) and list(meta[k]) == v)
        ):
            raise ValueError(
                f"metadata[{k!r}] = {meta[k]!r} contradicts the model ({v!r}); leave "
                "it out, it is filled in from the model."
            )
        meta[k] = v
    text = json.dumps(meta, default=_json_default)
    arrays: dict[str, np.ndarray] = {}
    for i, (w, b) in enumerate(quantized_params(model)):
        arrays[f"W{i}"] = w.astype(np.int8)
        arrays[f"b{i}"] = b
    arrays["metadata"] = np.array(text)
    path = os.fspath(path)
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(
            f"{path} exists; pass overwrite=True (CLI: --force) to replace it."
        )
    with open(path, "wb" if overwrite else "xb") as f:
        np.savez_compressed(f, **arrays)


_ARRAY_NAME = re.compile(r"([Wb])(\d+)")


def _read_npz(path: str | os.PathLike) -> tuple[Params, dict]:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no model file {path!r}.")
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as e:  # not a zip, or pickled content
        raise ValueError(
            f"{path} is not a readable .npz file of plain arrays ({e}); expected "
            "arrays W0, b0, W1, b1, ... as written by numpy.savez."
        ) from None
    if not hasattr(npz, "files"):
        raise ValueError(f"{path} holds a single array; expected an .npz archive.")
    with npz:
        names = set(npz.files)
        meta = {}
        if "metadata" in names:
            names.discard("metadata")
            try:
                meta = json.loads(str(npz["metadata"][()]))
            except (ValueError, TypeError) as e:
                raise ValueError(f"{path}: metadata is not valid JSON ({e}).") from None
            if not isinstance(meta, dict):
                raise ValueError(f"{path}: metadata must be a JSON object.")
        found: dict[str, dict[int, np.ndarray]] = {"W": {}, "b": {}}
        unexpected = []
        for name in sorted(names):
            m = _ARRAY_NAME.fullmatch(name)
            if m is None:
                unexpected.append(name)
            else:
                found[m[1]][int(m[2])] = npz[name]
    if unexpected:
        raise ValueError(
            f"{path}: unexpected arrays {unexpected}; a model file holds only W0, b0, "
            "W1, b1, ... (and optionally metadata). Rename or drop the others."
        )
    n = max([*found["W"], *found["b"], -1]) + 1
    if n == 0:
        raise ValueError(
            f"{path}: no layers; expected arrays W0, b0, W1, b1, ... with W_i of "
            "shape (fan_in, fan_out) and b_i of shape (fan_out,)."
        )
    missing = [f"{c}{i}" for i in range(n) for c in "Wb" if i not in found[c]]
    if missing:
        raise ValueError(
            f"{path}: missing {', '.join(missing)}; a network of {n} layers needs "
            f"W0..W{n - 1} and b0..b{n - 1}."
        )
    params = []
    for i in range(n):
        w, b = found["W"][i], found["b"][i]
        for name, a in ((f"W{i}", w), (f"b{i}", b)):
            if not (np.issubdtype(a.dtype, np.number) and not np.iscomplexobj(a)):
                raise ValueError(f"{path}: {name} has dtype {a.dtype}; expected real.")
        if w.ndim != 2:
            raise ValueError(
                f"{path}: W{i} has shape {w.shape}; expected (fan_in, fan_out)."
            )
        if b.shape != (w.shape[1],):
            raise ValueError(
                f"{path}: b{i} has shape {b.shape} but W{i} has shape {w.shape}; "
                f"expected ({w.shape[1]},)."
            )
        if i and w.shape[0] != params[-1][0].shape[1]:
            raise ValueError(
                f"{path}: W{i} has {w.shape[0]} rows but W{i - 1} has "
                f"{params[-1][0].shape[1]} columns; consecutive layers must match "
                "(W_i has shape (fan_in, fan_out), not (fan_out, fan_in))."
            )
        w64, b64 = w.astype(np.float64), b.astype(np.float64)
        bad = ~np.isin(w64, (-1.0, 0.0, 1.0))
        if bad.any():
            idx = tuple(int(j) for j in np.argwhere(bad)[0])
            raise ValueError(
                f"{path}: W{i} is not ternary: W{i}[{idx}] = {w64[idx]!r} "
                f"({int(bad.sum())} entries outside {{-1, 0, 1}}). Quantise the "
                "weights first (e.g. np.sign, or quantize())."
            )
        if not np.all(np.isfinite(b64)):
            raise ValueError(f"{path}: b{i} has non-finite entries.")
        params.append((w64, b64))
    return params, meta


def load_params(path: str | os.PathLike) -> Params:
    """The saved network as exact float64 arrays `[(W0, b0), ...]`, checked.

    Example:
        >>> from jaxcrn import load_params
        >>> params = load_params("experiments/models/iris.npz")  # doctest: +SKIP
        >>> [w.shape for w, b in params]  # doctest: +SKIP
        [(4, 8), (8, 3)]
    """
    return _read_npz(path)[0]


def load_metadata(path: str | os.PathLike) -> dict:
    """The JSON metadata stored in a saved model (`{}` if it has none).

    Example:
        >>> from jaxcrn import load_metadata
        >>> load_metadata("experiments/models/iris.npz")["dataset"]  # doctest: +SKIP
        'iris'
    """
    return _read_npz(path)[1]


def load_model(path: str | os.PathLike, *, dtype: Any = None) -> BinaryMLP:
    """Load a network saved by `save_model`, or any `.npz` of `W0, b0, W1, b1, ...`.

    `W_i` must have shape `(fan_in, fan_out)` and values in {-1, 0, 1}; `b_i` shape
    `(fan_out,)`. Without metadata, the quantisation is inferred: ternary if any
    weight is 0, else binary. The latent weights of the returned model are the
    quantised values, so its forward pass equals the saved one.

    Args:
        path: the `.npz` file.
        dtype: parameter dtype; default float64 when `jax_enable_x64` is on, else
            float32 (biases that float32 cannot hold exactly give a warning; use
            `load_params` or `forward(path, x)` for the exact values).

    Example:
        >>> import jax.random as jr
        >>> from jaxcrn import forward, init_model, load_model, save_model
        >>> model = init_model((4, 8, 3), key=jr.PRNGKey(0), quantization="ternary")
        >>> save_model(model, "/tmp/tern-doc.npz", overwrite=True)
        >>> load_model("/tmp/tern-doc.npz").quantization
        'ternary'
    """
    params, meta = _read_npz(path)
    has_zero = any(bool(np.any(w == 0)) for w, _ in params)
    quantization = meta.get("quantization", "ternary" if has_zero else "binary")
    threshold = meta.get("threshold", DEFAULT_THRESHOLD)
    try:
        _check_quantization(quantization, threshold)
    except ValueError as e:
        raise ValueError(f"{os.fspath(path)}: metadata: {e}") from None
    if quantization == "binary" and has_zero:
        raise ValueError(
            f"{os.fspath(path)}: the metadata says quantization 'binary' but some "
            "weights are 0; set it to 'ternary' (or drop the metadata)."
        )
    if dtype is None:
        dtype = jnp.float64 if jax.config.read("jax_enable_x64") else jnp.float32
    layers = []
    for i, (w, b) in enumerate(params):
        bias = jnp.asarray(b, dtype)
        if not np.array_equal(np.asarray(bias, np.float64), b):
            warnings.warn(
                f"{os.fspath(path)}: b{i} is rounded to {jnp.dtype(dtype).name}; "
                "enable jax_enable_x64 (or use load_params / forward(path, x)) for "
                "the exact values.",
                stacklevel=2,
            )
        layers.append(BinaryDense(jnp.asarray(w, dtype), bias, quantization, threshold))
    model = BinaryMLP(
        tuple(layers),
        float(meta.get("dropout_in", 0.0)),
        float(meta.get("dropout_hidden", 0.0)),
    )
    return model


def save_checkpoint(
    model: BinaryMLP, path: str | os.PathLike, *, overwrite: bool = False
) -> None:
    """Save the latent (real) weights with Equinox serialisation, to resume training.

    The file is one JSON header line (architecture, quantisation, dtype) followed by
    `eqx.tree_serialise_leaves` data. Adam's state is not saved.

    Example:
        >>> import jax.random as jr
        >>> from jaxcrn import init_model, load_checkpoint, save_checkpoint
        >>> model = init_model((4, 8, 3), key=jr.PRNGKey(0))
        >>> save_checkpoint(model, "/tmp/iris-doc.eqx", overwrite=True)
        >>> bool((load_checkpoint("/tmp/iris-doc.eqx").layers[0].weight
        ...       == model.layers[0].weight).all())
        True
    """
    header = {
        **_model_metadata(model),
        "format": _CHECKPOINT_FORMAT,
        "dtype": jnp.dtype(model.layers[0].weight.dtype).name,
    }
    path = os.fspath(path)
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it.")
    with open(path, "wb" if overwrite else "xb") as f:
        f.write((json.dumps(header) + "\n").encode())
        eqx.tree_serialise_leaves(f, model)


def load_checkpoint(path: str | os.PathLike) -> BinaryMLP:
    """Load a model written by `save_checkpoint`, latent weights included.

    Example:
        >>> from jaxcrn import load_checkpoint
        >>> model = load_checkpoint("/tmp/iris-doc.eqx")  # doctest: +SKIP
    """
    with open(path, "rb") as f:
        try:
            header = json.loads(f.readline())
        except ValueError:
            header = None
        if not isinstance(header, dict) or header.get("format") != _CHECKPOINT_FORMAT:
            raise ValueError(
                f"{os.fspath(path)} is not a jaxcrn checkpoint (written by "
                "save_checkpoint); for .npz model files use load_model."
            )
        dtype = jnp.dtype(header["dtype"])
        if dtype == jnp.float64 and not jax.config.read("jax_enable_x64"):
            raise ValueError(
                f"{os.fspath(path)} holds float64 weights; enable jax_enable_x64 to "
                "load it."
            )
        like = init_model(
            header["layer_sizes"],
            key=jr.PRNGKey(0),
            quantization=header["quantization"],
            threshold=header["threshold"],
            dropout_in=header["dropout_in"],
            dropout_hidden=header["dropout_hidden"],
            dtype=dtype,
        )
        return eqx.tree_deserialise_leaves(f, like)
