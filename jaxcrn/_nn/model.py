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

import functools
import math
import os
from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray


QUANTIZATIONS = ("binary", "ternary")
DEFAULT_THRESHOLD = 0.15


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
        from .io import load_params

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
