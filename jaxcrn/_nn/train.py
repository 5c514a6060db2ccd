"""Training a `BinaryMLP` with BinaryConnect: squared hinge loss, Adam, clipping,
the best epoch kept; the presets that reach the paper's accuracy."""

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray

from .._progress import Progress
from .model import BinaryMLP, _glorot_scale, init_model


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
    progress: bool = False,
    callback: Callable[[int, dict], None] | None = None,
) -> tuple[BinaryMLP, dict]:
    """Train a `BinaryMLP` with BinaryConnect: squared hinge loss, Adam, clipping.

    Each epoch shuffles the training set (seeded by `config.seed`), scans the
    BinaryConnect step (`make_step`) over its mini-batches, then measures training
    and validation accuracy; the parameters of the best epoch (highest validation
    accuracy, ties broken by training accuracy, which matters for small validation
    sets, then by the later epoch) are kept. Several epochs run in one
    jitted call. With `progress`, a progress bar (a widget in Jupyter, a bar on a
    terminal) shows the epochs done, loss, training and validation accuracy.

    Args:
        model: the network to train (e.g. from `init_model`).
        data: a `jaxcrn.datasets.Dataset` (its train and valid splits are used), or
            a pair `((x_train, y_train), (x_valid, y_valid))`.
        config: a `TrainConfig`.
        progress: show a progress bar (off by default, as the command line turns
            it on).
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
        >>> model, history = train(model, data, TrainConfig(epochs=50))
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
    total = config.epochs * config.restarts
    with Progress(total, "training", enabled=progress, unit="epoch") as bar:
        for r in range(config.restarts):
            key, init_key = jr.split(jr.fold_in(jr.PRNGKey(config.seed), r))
            start_model = _reinit(model, init_key) if r else model
            prefix = f"run {r + 1}/{config.restarts}: " if config.restarts > 1 else ""
            results.append(
                _train_run(start_model, arrays, config, key, (bar, prefix), callback)
            )
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
        bar, prefix = progress
        bar.update(
            n,
            f"{prefix}loss {history['loss'][-1]:.4f}, train "
            f"{100 * history['train_acc'][-1]:.2f}%, valid "
            f"{100 * history['valid_acc'][-1]:.2f}%, best {100 * best[1]:.2f}% @ "
            f"{best[0]}",
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
