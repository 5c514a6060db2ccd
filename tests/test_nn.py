import os

import equinox as eqx
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from hypothesis import given
from hypothesis.extra.numpy import arrays

from jaxcrn import (
    BinaryDense,
    BinaryMLP,
    TrainConfig,
    accuracy,
    datasets,
    forward,
    init_model,
    init_opt_state,
    load_checkpoint,
    load_metadata,
    load_model,
    load_params,
    make_step,
    quantize,
    quantized_params,
    save_checkpoint,
    save_model,
    squared_hinge_loss,
    train,
)
from jaxcrn._cli import main
from jaxcrn._nn.model import _dropout

from .helpers import Payload, array_npy, npy_bytes, npz_bytes


T32 = float(np.float32(0.15))  # the float32 threshold, as a float64 number


# ---------------------------------------------------------------------- quantiser


def test_binary_rule():
    w = jnp.array([-1.0, -0.3, -1e-30, -0.0, 0.0, 1e-30, 0.7, 1.0])
    assert quantize(w, "binary").tolist() == [-1, -1, -1, 1, 1, 1, 1, 1]


def test_ternary_rule_at_the_float32_threshold():
    below = float(np.nextafter(np.float32(0.15), np.float32(0)))
    # A float64 weight slightly below 0.15 that rounds to float32(0.15) is kept:
    # the comparison is made in float32, as in the float32 reference code.
    just_below_f64 = 0.15 - 1e-12
    assert np.float64(just_below_f64) < 0.15
    assert np.float32(just_below_f64) == np.float32(0.15)
    w = jnp.array(
        [T32, -T32, below, -below, 0.15, just_below_f64, 0.0, 0.5, -1.0],
        jnp.float64,
    )
    q = quantize(w, "ternary", 0.15)
    assert q.tolist() == [1, -1, 0, 0, 1, 1, 0, 1, -1]
    w32 = jnp.array([T32, below, -T32], jnp.float32)
    assert quantize(w32, "ternary", 0.15).tolist() == [1, 0, -1]


@given(
    w=arrays(np.float32, 16, elements=st.floats(-1, 1, width=32)),
    t=st.floats(0.01, 1.0),
)
def test_ternary_matches_reference_rule(w, t):
    expected = np.where(
        np.abs(w) < np.float32(t), 0.0, np.where(w < 0, -1.0, 1.0)
    ).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(quantize(w, "ternary", t)), expected)


def test_quantize_rejects_bad_settings():
    with pytest.raises(ValueError, match="binary' or 'ternary"):
        quantize(jnp.zeros(3), "int8")
    with pytest.raises(ValueError, match=r"threshold must be a number in \(0, 1\]"):
        quantize(jnp.zeros(3), "ternary", 0.0)


@pytest.mark.parametrize("quantization", ["binary", "ternary"])
def test_straight_through_gradient(quantization):
    key1, key2 = jr.split(jr.PRNGKey(0))
    w = jr.uniform(key1, (5, 3), minval=-1, maxval=1)
    c = jr.normal(key2, (5, 3))
    layer = BinaryDense(w, jnp.zeros(3), quantization, 0.15)
    q = layer.quantized_weight()
    # the value is exactly the quantised weight ...
    np.testing.assert_array_equal(q, quantize(w, quantization, 0.15))
    # ... and the gradient passes through unchanged, also where q is 0 or clipped.
    grad = eqx.filter_grad(lambda l: jnp.sum(c * l.quantized_weight()))(layer)
    np.testing.assert_array_equal(grad.weight, c)


# ------------------------------------------------------------------ model, loss


def test_layer_and_model_compute_the_quantised_affine_map():
    model = init_model((4, 6, 3), key=jr.PRNGKey(1), quantization="ternary")
    model = eqx.tree_at(
        lambda m: (m.layers[0].bias, m.layers[1].bias),
        model,
        (jnp.linspace(-1, 1, 6, dtype=jnp.float32), jnp.ones(3, jnp.float32)),
    )
    x = np.asarray(jr.normal(jr.PRNGKey(2), (7, 4)))
    (w0, b0), (w1, b1) = quantized_params(model)
    assert w0.dtype == np.float64 and set(np.unique(w0)) <= {-1.0, 0.0, 1.0}
    expected = np.maximum(x @ w0 + b0, 0) @ w1 + b1
    np.testing.assert_allclose(forward(model, x), expected, rtol=1e-12)
    np.testing.assert_array_equal(
        forward(quantized_params(model), x), forward(model, x)
    )
    batched = eqx.filter_jit(lambda m, x: jax.vmap(m)(x))(model, x)
    np.testing.assert_allclose(batched, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(forward(model, x[0]), forward(model, x)[0])
    assert model.layer_sizes == (4, 6, 3)


def test_model_rejects_inconsistent_layers():
    a = BinaryDense(jnp.zeros((4, 5)), jnp.zeros(5))
    with pytest.raises(ValueError, match="takes 3 inputs but layer 0 has 5 outputs"):
        BinaryMLP((a, BinaryDense(jnp.zeros((3, 2)), jnp.zeros(2))))
    with pytest.raises(ValueError, match="all layers must agree"):
        BinaryMLP((a, BinaryDense(jnp.zeros((5, 2)), jnp.zeros(2), "ternary")))
    # (a TypeError from jaxtyping when runtime type checking is on)
    with pytest.raises((ValueError, TypeError), match="bias"):
        BinaryDense(jnp.zeros((4, 5)), jnp.zeros(4))


def test_dropout_is_inverted_and_training_only():
    y = np.asarray(
        jax.jit(_dropout, static_argnums=1)(jnp.ones(10_000), 0.25, jr.PRNGKey(0))
    )
    assert set(np.unique(y).tolist()) == {0.0, 1 / 0.75}
    assert abs(np.mean(y == 0) - 0.25) < 0.02
    call = eqx.filter_jit(lambda m, x, key: m(x, key=key))
    plain = _random_model("binary")
    model = BinaryMLP(plain.layers, dropout_in=0.5, dropout_hidden=0.5)
    x, key = np.ones(4), jr.PRNGKey(1)
    exact = forward(plain, x)
    assert not np.allclose(call(model, x, key), exact)
    np.testing.assert_allclose(call(plain, x, key), exact, rtol=1e-12)
    np.testing.assert_allclose(call(model, x, None), exact, rtol=1e-12)  # evaluation


def test_squared_hinge_loss_by_hand():
    # targets t = [[1, -1], [-1, 1]]; 1 - t*y = [[0.5, -1], [0.5, -2]] -> 0.25, 0.25
    out = jnp.array([[0.5, -2.0], [-0.5, 3.0]])
    assert float(squared_hinge_loss(out, jnp.array([0, 1]))) == pytest.approx(0.125)
    # t = [-1, -1, 1]; 1 - t*y = [3, 1, 4] -> (9 + 1 + 16) / 3
    out = jnp.array([[2.0, 0.0, -3.0]])
    assert float(squared_hinge_loss(out, jnp.array([2]))) == pytest.approx(26 / 3)
    assert float(squared_hinge_loss(jnp.array([[1.0, -1.0]]), jnp.array([0]))) == 0.0


def test_step_scales_adam_by_glorot_and_clips():
    model = init_model((3, 4, 2), key=jr.PRNGKey(3))
    # push half the latent weights right next to the clipping bounds
    w0 = model.layers[0].weight
    model = eqx.tree_at(lambda m: m.layers[0].weight, model, jnp.sign(w0) * 0.999)
    x = jr.normal(jr.PRNGKey(4), (8, 3), jnp.float32)
    y = jnp.array([0, 1, 0, 1, 1, 0, 0, 1])
    lr = 0.05

    def loss(m):
        return squared_hinge_loss(jax.vmap(m)(x), y)

    grads = eqx.filter_jit(eqx.filter_grad(loss))(model)
    new, _, value = make_step(
        model, init_opt_state(model), x, y, jnp.float32(lr), jr.PRNGKey(0)
    )
    assert float(value) == pytest.approx(float(eqx.filter_jit(loss)(model)), rel=1e-6)
    for layer, g, after in zip(model.layers, grads.layers, new.layers):
        scale = 1 / np.sqrt(1.5 / (layer.fan_in + layer.fan_out))
        # Adam's first step is g / (|g| + eps) after bias correction
        d = np.asarray(g.weight) / (np.abs(np.asarray(g.weight)) + 1e-8)
        expected = np.clip(np.asarray(layer.weight) - scale * lr * d, -1, 1)
        np.testing.assert_allclose(after.weight, expected, rtol=1e-5, atol=1e-6)
        db = np.asarray(g.bias) / (np.abs(np.asarray(g.bias)) + 1e-8)
        np.testing.assert_allclose(
            after.bias, np.asarray(layer.bias) - lr * db, rtol=1e-5, atol=1e-6
        )
    clipped = np.asarray(new.layers[0].weight)
    assert np.abs(clipped).max() == 1.0
    assert np.sum(np.abs(clipped) == 1.0) > 0  # clipping happened


# ----------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def iris():
    return datasets.iris()


@pytest.fixture(scope="module")
def trained_iris(iris):
    model = init_model((4, 8, 3), key=jr.PRNGKey(0))
    config = TrainConfig(epochs=400, batch_size=16, lr_start=3e-3, lr_end=1e-4)
    return train(model, iris, config)


def test_short_iris_training_beats_85_percent(iris, trained_iris):
    model, history = trained_iris
    acc = accuracy(model, iris.test.x, iris.test.y)
    assert acc > 0.85
    assert len(history["loss"]) == len(history["valid_acc"]) == 400
    assert history["best_valid_acc"] == max(history["valid_acc"])
    best = history["best_epoch"] - 1
    assert history["valid_acc"][best] == history["best_valid_acc"]
    # ties on validation accuracy are broken by training accuracy
    ties = [
        t
        for v, t in zip(history["valid_acc"], history["train_acc"])
        if v == history["best_valid_acc"]
    ]
    assert history["train_acc"][best] == history["best_train_acc"] == max(ties)
    # the returned model is the best epoch's (float32 vs float64 ties aside)
    assert abs(acc - history["best_valid_acc"]) <= 1 / 150
    assert history["loss"][-1] < history["loss"][0]
    assert history["lr"][0] == pytest.approx(3e-3)
    assert history["lr"][-1] == pytest.approx(3e-3 * (1e-4 / 3e-3) ** (399 / 400))


def test_training_is_reproducible_and_restarts_keep_the_best(iris, trained_iris):
    model = init_model((4, 8, 3), key=jr.PRNGKey(0))
    config = TrainConfig(epochs=400, batch_size=16, lr_start=3e-3, lr_end=1e-4)
    again, _ = train(model, iris, config)
    for a, b in zip(quantized_params(again), quantized_params(trained_iris[0])):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    config = TrainConfig(
        epochs=400, batch_size=16, lr_start=3e-3, lr_end=1e-4, restarts=2
    )
    _, history = train(model, iris, config)
    scores = history["restart_scores"]
    assert len(scores) == 2 and scores[0][0] == trained_iris[1]["best_valid_acc"]
    assert history["best_valid_acc"] == max(scores)[0]


def test_train_rejects_mismatched_data(iris):
    model = init_model((5, 8, 3), key=jr.PRNGKey(0))
    with pytest.raises(ValueError, match="the model expects"):
        train(model, iris, TrainConfig(epochs=1))
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="loss_scale must be a positive number"):
        TrainConfig(loss_scale=0.0)
    with pytest.raises(ValueError, match="dropout_in must be in"):
        TrainConfig(dropout_in=1.0)


# --------------------------------------------------------------------- save/load


def _random_model(quantization, seed=0, sizes=(4, 6, 3)):
    """A float64 model with random latent weights and biases (numpy: no compiles)."""
    rng = np.random.default_rng(seed)
    layers = tuple(
        BinaryDense(
            jnp.asarray(rng.uniform(-1, 1, (m, n))),
            jnp.asarray(rng.normal(size=n)),
            quantization,
        )
        for m, n in zip(sizes[:-1], sizes[1:])
    )
    return BinaryMLP(layers)


@pytest.mark.parametrize("quantization", ["binary", "ternary"])
def test_save_load_round_trip(tmp_path, quantization):
    model = _random_model(quantization)
    path = tmp_path / "model.npz"
    save_model(model, path, metadata={"dataset": "iris", "accuracy": np.float32(0.5)})
    loaded = load_model(path)
    assert loaded.quantization == quantization and loaded.layer_sizes == (4, 6, 3)
    x = np.asarray(jr.normal(jr.PRNGKey(5), (20, 4)))
    np.testing.assert_array_equal(forward(loaded, x), forward(model, x))
    np.testing.assert_array_equal(forward(path, x), forward(model, x))
    for (w, b), (w2, b2) in zip(quantized_params(model), load_params(path)):
        np.testing.assert_array_equal(w, w2)
        np.testing.assert_array_equal(b, b2)
    meta = load_metadata(path)
    assert meta["dataset"] == "iris" and meta["accuracy"] == 0.5
    assert meta["quantization"] == quantization and meta["layer_sizes"] == [4, 6, 3]
    with np.load(path) as f:
        assert sorted(f.files) == ["W0", "W1", "b0", "b1", "metadata"]
        assert f["W0"].shape == (4, 6)


def test_loaded_ternary_zeros_stay_zero(tmp_path):
    w0 = np.array([[1.0, 0.0], [0.0, -1.0]])
    path = tmp_path / "plain.npz"
    np.savez(path, W0=w0, b0=np.array([0.5, -0.25]))
    model = load_model(path)
    assert model.quantization == "ternary"
    np.testing.assert_array_equal(quantized_params(model)[0][0], w0)
    np.testing.assert_array_equal(
        forward(model, np.array([[2.0, 3.0]])), [[2.5, -3.25]]
    )
    np.savez(path, W0=np.array([[1, -1]], np.int8), b0=np.zeros(2))
    assert load_model(path).quantization == "binary"
    assert load_metadata(path) == {}


@pytest.mark.parametrize(
    "arrays, match",
    [
        ({"W0": np.array([[0.5, 1.0]]), "b0": np.zeros(2)}, "not ternary"),
        ({"W0": np.ones((2, 3)), "b0": np.zeros(2)}, "expected \\(3,\\)"),
        (
            {
                "W0": np.ones((2, 3)),
                "b0": np.zeros(3),
                "W1": np.ones((4, 2)),
                "b1": np.zeros(2),
            },
            "W1 has 4 rows but W0 has 3 columns",
        ),
        ({"W0": np.ones((2, 3)), "b0": np.zeros(3), "W1": np.ones((3, 2))}, "b1"),
        (
            {
                "W0": np.ones((2, 3)),
                "b0": np.zeros(3),
                "W2": np.ones((3, 2)),
                "b2": np.zeros(2),
            },
            "missing W1, b1",
        ),
        ({"W0": np.ones(3), "b0": np.zeros(3)}, "expected \\(fan_in, fan_out\\)"),
        ({"weights": np.ones((2, 2))}, "unexpected arrays \\['weights'\\]"),
        ({"W0": np.ones((2, 2)), "b0": np.array([np.nan, 0.0])}, "non-finite"),
        (
            {
                "W0": np.array([[0.0, 1.0]]),
                "b0": np.zeros(2),
                "metadata": np.array('{"quantization": "binary"}'),
            },
            "set it to 'ternary'",
        ),
        (
            {
                "W0": np.ones((2, 2)),
                "b0": np.zeros(2),
                "metadata": np.array('{"format": "other.Model", "version": 3}'),
            },
            "format 'other.Model', version 3; this jaxcrn reads",
        ),
    ],
)
def test_load_rejects_bad_files(tmp_path, arrays, match):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=match):
        load_model(path)


def test_load_rejects_non_npz_and_missing(tmp_path):
    path = tmp_path / "model.npz"
    path.write_text("not a zip")
    with pytest.raises(ValueError, match="is not a model file"):
        load_model(path)
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "nope.npz")


def test_save_never_overwrites_silently(tmp_path):
    model = init_model((2, 2), key=jr.PRNGKey(0))
    path = tmp_path / "m.npz"
    save_model(model, path)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_model(model, path)
    save_model(model, path, overwrite=True)
    with pytest.raises(ValueError, match="contradicts the model"):
        save_model(model, path, metadata={"quantization": "ternary"}, overwrite=True)
    # a diverged training run: the file it wrote could not be loaded back
    nan = eqx.tree_at(lambda m: m.layers[0].bias, model, model.layers[0].bias * np.nan)
    with pytest.raises(ValueError, match="must be finite .* was not written"):
        save_model(nan, tmp_path / "nan.npz")
    assert not (tmp_path / "nan.npz").exists()


def test_checkpoint_keeps_latent_weights(tmp_path):
    model = init_model(
        (4, 8, 3),
        key=jr.PRNGKey(0),
        quantization="ternary",
        threshold=0.3,
        dropout_in=0.1,
    )
    path = tmp_path / "m.eqx"
    save_checkpoint(model, path)
    loaded = load_checkpoint(path)
    assert loaded.threshold == 0.3 and loaded.dropout_in == 0.1
    for a, b in zip(model.layers, loaded.layers):
        np.testing.assert_array_equal(a.weight, b.weight)
    with pytest.raises(ValueError, match="not a jaxcrn checkpoint"):
        load_checkpoint(_write(tmp_path / "x.eqx", b"garbage\n"))


def _write(path, data):
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------- CLI


def test_cli_train_iris(tmp_path, capsys):
    out = tmp_path / "iris.npz"
    argv = [
        "train",
        "iris",
        "--epochs",
        "300",
        "--restarts",
        "1",
        "--lr-start",
        "3e-3",
        "--quiet",
        "-o",
        str(out),
    ]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "accuracy: train" in text and "test" in text
    meta = load_metadata(out)
    assert meta["dataset"] == "iris" and meta["layer_sizes"] == [4, 8, 3]
    assert meta["train_config"]["epochs"] == 300
    assert meta["preprocessing"]["mean"][0] == pytest.approx(5.843333, abs=1e-6)
    data = datasets.iris()
    assert meta["accuracy"]["test"] == accuracy(out, data.test.x, data.test.y)
    before = out.read_bytes()
    assert main(argv) == 2  # exists, no --force
    assert "--force" in capsys.readouterr().err
    assert out.read_bytes() == before


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--threshold", "0", "--quant", "ternary"], "threshold"),
        (["--epochs", "0"], "epochs"),
        (["--hidden", "0"], "hidden"),
        (["--data", "/nonexistent"], "takes no --data"),
        (["--batch", "151"], "exceeds the 150 training samples"),
        (["--lr-start", "-1"], "--lr-start must be a positive number"),
    ],
)
def test_cli_train_bad_input(capsys, monkeypatch, tmp_path, extra, match):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "iris", "--quiet", *extra]) == 2
    assert os.listdir(tmp_path) == []
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_cli_train_mnist_without_data(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("JAXCRN_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["train", "mnist14", "--quiet", "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "train-images-idx3-ubyte" in err and "t10k-labels-idx1-ubyte" in err


def test_shipped_models_load_and_reproduce_their_accuracy():
    here = os.path.join(os.path.dirname(__file__), "..", "experiments", "models")
    names = sorted(n for n in os.listdir(here) if n.endswith(".npz"))
    if not names:
        pytest.skip("no trained models in experiments/models")
    for name in names:
        path = os.path.join(here, name)
        meta = load_metadata(path)
        model = load_model(path)
        assert list(model.layer_sizes) == meta["layer_sizes"]
        assert model.quantization == meta["quantization"]
        if meta["dataset"] in ("iris", "virus"):
            test = datasets.load(meta["dataset"]).test
            assert accuracy(path, test.x, test.y) == meta["accuracy"]["test"]


# ------------------------------------------- issue 15: model files that are not right


def _model_arrays():
    return {"W0": np.ones((2, 3), np.int8), "b0": np.zeros(3)}


def _npz(tmp_path, members, name="m.npz", **kw):
    path = tmp_path / name
    path.write_bytes(npz_bytes(members, **kw))
    return path


def test_a_malicious_pickle_runs_nothing(tmp_path, capsys):
    """An object array would run code when unpickled: jaxcrn never unpickles."""
    marker = tmp_path / "pwned"
    obj = np.empty(1, dtype=object)
    obj[0] = Payload(str(marker))
    for key in ("W0", "metadata"):
        arrays = {k: array_npy(v) for k, v in _model_arrays().items()}
        arrays[key] = array_npy(obj)
        path = _npz(tmp_path, {f"{k}.npy": v for k, v in arrays.items()})
        with pytest.raises(ValueError, match=f"{key} holds Python objects") as info:
            load_model(path)
        assert "never unpickles" in str(info.value)
        assert "allow_pickle" not in str(info.value)
        out = tmp_path / "net.crn"
        assert main(["compile", str(path), "-o", str(out)]) == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and "Python objects" in err
        assert not out.exists()
        assert not marker.exists()
    # the payload is real: unpickling it does create the folder
    import pickle

    pickle.loads(pickle.dumps(obj))
    assert marker.exists()


@pytest.mark.parametrize(
    "members, match",
    [
        # an enormous declared array, and a declared size the data does not hold
        ({"W0.npy": npy_bytes("<f8", (10**12,), b"\0" * 64)}, "more than the 256 MiB"),
        ({"W0.npy": npy_bytes("<f8", (2**62, 2**62))}, "more than the 256 MiB"),
        ({"W0.npy": npy_bytes("<f8", (1000, 3), b"\0" * 80)}, "truncated or corrupt"),
        ({"W0.npy": b"\x93NUMPY\x09\x00garbage"}, "truncated or corrupt"),
        ({"W0.npy": b"not an npy file"}, "truncated or corrupt"),
        ({"W0.npy": npy_bytes("<c16", (2, 3), b"\0" * 96)}, "expected real numbers"),
        ({"W0.npy": npy_bytes("|V8", (2, 3), b"\0" * 48)}, "expected real numbers"),
        ({"W0.npy": npy_bytes("<U3", (2, 3), b"\0" * 72)}, "dtype <U3; expected real"),
        ({"W0.npy": array_npy(np.ones((2, 3), bool))}, "dtype bool; expected real"),
        ({"W0.npy": array_npy(np.ones((0, 3)))}, "both >= 1"),
        ({"readme.txt": b"hello"}, "not an array of an .npz"),
        ({"metadata.npy": array_npy(np.array([1, 2]))}, "one string of JSON"),
        ({"metadata.npy": array_npy(np.array("{"))}, "not valid JSON"),
        ({"metadata.npy": array_npy(np.array("[1]"))}, "must be a JSON object"),
        ({"metadata.npy": array_npy(np.array("[" * 100000))}, "not valid JSON"),
        ({"metadata.npy": array_npy(np.array('{"dropout_in": "a"}'))}, "dropout_in"),
        ({"metadata.npy": array_npy(np.array('{"threshold": null}'))}, "threshold"),
        ({"metadata.npy": array_npy(np.array('{"quantization": 3}'))}, "quantization"),
        ({"metadata.npy": array_npy(np.array('{"layer_sizes": [9]}'))}, "contradicts"),
    ],
)
def test_load_rejects_malformed_model_files(tmp_path, members, match):
    arrays = {f"{k}.npy": array_npy(v) for k, v in _model_arrays().items()}
    path = _npz(tmp_path, {**arrays, **members})
    with pytest.raises(ValueError, match=match) as info:
        load_model(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_truncated_and_corrupt_archives(tmp_path):
    model = init_model((4, 8, 3), key=jr.PRNGKey(0))
    good = tmp_path / "good.npz"
    save_model(model, good)
    data = good.read_bytes()
    for cut in (10, len(data) // 2, len(data) - 30):
        path = tmp_path / f"cut{cut}.npz"
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="not a model file|truncated or corrupt"):
            load_model(path)
    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0xFF  # inside compressed data: zlib or CRC error
    path = tmp_path / "flipped.npz"
    path.write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match=str(path)):
        load_model(path)
    # one bit in a directory entry (a comment length, 0 -> 256): zipfile then lists
    # fewer arrays without an error, and a 4-8 network without metadata loaded
    hidden = bytearray(data)
    entries = [i for i in range(len(data)) if data.startswith(b"PK\x01\x02", i)]
    hidden[entries[1] + 33] ^= 0x01  # the second entry's comment length, high byte
    path.write_bytes(bytes(hidden))
    with pytest.raises(
        ValueError, match="directory says it holds .* the file is damaged"
    ):
        load_model(path)


def test_compiling_a_crn_file_points_to_simulate(tmp_path, capsys):
    path = tmp_path / "net.crn"
    path.write_text("A -> B\n")
    with pytest.raises(ValueError, match="jaxcrn simulate") as info:
        load_model(path)
    assert "allow_pickle" not in str(info.value)
    assert main(["compile", str(path), "-o", str(tmp_path / "o.crn")]) == 2
    err = capsys.readouterr().err
    assert "is not a model file" in err and "`jaxcrn simulate`" in err
    assert sorted(os.listdir(tmp_path)) == ["net.crn"]
