"""Model files: `.npz` of quantised weights plus JSON metadata (`save_model`,
`load_model`) and checkpoints of the latent weights (`save_checkpoint`)."""

import dataclasses
import json
import math
import os
import re
import warnings
import zipfile
import zlib
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._files import write_output
from .model import (
    DEFAULT_THRESHOLD,
    BinaryDense,
    BinaryMLP,
    Params,
    _check_quantization,
    init_model,
    quantized_params,
)


_FORMAT = "jaxcrn.BinaryMLP"
_CHECKPOINT_FORMAT = "jaxcrn.BinaryMLP.checkpoint"


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
        if not np.all(np.isfinite(b)):
            j = int(np.argmax(~np.isfinite(b)))
            raise ValueError(
                f"b{i}[{j}] is {b[j]}: the model's biases must be finite (did training "
                f"diverge?); {os.fspath(path)} was not written."
            )
        arrays[f"W{i}"] = w.astype(np.int8)
        arrays[f"b{i}"] = b
    arrays["metadata"] = np.array(text)
    write_output(path, lambda f: np.savez_compressed(f, **arrays), overwrite=overwrite)


_ARRAY_NAME = re.compile(r"([Wb])(\d+)")


def _zip_directory_count(path: str) -> int | None:
    """The number of files the end-of-central-directory record lists (None when it
    is not found or is a ZIP64 placeholder): `zipfile` reads the directory entry by
    entry, and a damaged entry can end it early without an error."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 65_557))  # the record, and a comment of up to 64 KiB
        tail = f.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) < at + 22:
        return None
    total = int.from_bytes(tail[at + 10 : at + 12], "little")
    return None if total == 0xFFFF else total


_EXPECTED = (
    "a model file is an .npz archive of arrays W0, b0, W1, b1, ... (and optionally "
    "metadata), as written by `jaxcrn train` or save_model"
)
_MAX_ARRAY_BYTES = 1 << 28  # 256 MiB: far above any network a CRN can compute
_MAX_MEMBERS = 4096


class _Corrupt(Exception):
    pass


class _Refused(Exception):
    pass


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, key: str, path: str):
    """One `.npy` member, read without ever unpickling: the header is checked first
    (plain numbers or text only, a size the data can hold), then the data."""
    limit = _MAX_ARRAY_BYTES
    try:
        with zf.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise _Corrupt(f"unknown .npy format version {version}")
            if dtype.hasobject:
                raise _Refused(
                    f"{path}: array {key} holds Python objects (dtype {dtype}), which "
                    "would have to be unpickled; jaxcrn never unpickles (it could run "
                    "code). Save the weights as numbers, e.g. np.asarray(W, np.int8)."
                )
            if dtype.kind not in "biufU" or dtype.fields is not None:
                raise _Refused(
                    f"{path}: array {key} has dtype {dtype}; expected real numbers "
                    "(int8 or float64 as save_model writes)."
                )
            count = math.prod(shape)
            nbytes = count * dtype.itemsize
            if nbytes > limit:
                raise _Refused(
                    f"{path}: array {key} declares shape {shape} ({nbytes:,} bytes), "
                    f"more than the {limit >> 20} MiB any model needs; the file is "
                    "corrupt or not a model."
                )
            data = f.read(nbytes)
            if len(data) != nbytes:
                raise _Corrupt(
                    f"array {key} declares shape {shape} but holds {len(data):,} of "
                    f"its {nbytes:,} bytes"
                )
    except _Refused as e:
        raise ValueError(str(e)) from None
    except _Corrupt as e:
        raise ValueError(f"{path} is truncated or corrupt: {e}.") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as e:
        text = " ".join(str(e).split())[:120]
        raise ValueError(
            f"{path} is truncated or corrupt: array {key} cannot be read ({text})."
        ) from None
    arr = np.frombuffer(data, dtype=dtype, count=count)
    return arr.reshape(shape, order="F" if fortran else "C")


def _read_npz(path: str | os.PathLike) -> tuple[Params, dict]:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no model file {path!r}.")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError):
        hint = ""
        with open(path, "rb") as f:
            head = f.read(4096)
        try:
            head.decode("utf-8")
            if b"->" in head or path.endswith(".crn"):
                hint = "; a .crn file is simulated with `jaxcrn simulate`, not loaded"
        except UnicodeDecodeError:
            pass
        raise ValueError(
            f"{path} is not a model file (not an .npz archive){hint}; {_EXPECTED}."
        ) from None
    with zf:
        infos = zf.infolist()
        listed = _zip_directory_count(path)
        if listed is not None and listed != len(infos):
            raise ValueError(
                f"{path}: the archive's directory says it holds {listed} arrays, but "
                f"{len(infos)} can be read: the file is damaged; save the model again."
            )
        if len(infos) > _MAX_MEMBERS:
            raise ValueError(f"{path} holds {len(infos)} files; {_EXPECTED}.")
        members: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            key = info.filename.removesuffix(".npy")
            if key == info.filename or key in members:
                raise ValueError(
                    f"{path} holds {info.filename!r}, which is not an array of an "
                    f".npz archive; {_EXPECTED}."
                )
            members[key] = info
        names = set(members)
        meta = {}
        if "metadata" in names:
            names.discard("metadata")
            m = _read_member(zf, members["metadata"], "metadata", path)
            if m.dtype.kind != "U" or m.shape != ():
                raise ValueError(
                    f"{path}: metadata must be one string of JSON, got an array of "
                    f"dtype {m.dtype} and shape {m.shape}."
                )
            try:
                meta = json.loads(str(m[()]))
            except (ValueError, TypeError, RecursionError) as e:
                text = " ".join(str(e).split())[:80]
                raise ValueError(
                    f"{path}: metadata is not valid JSON ({text})."
                ) from None
            if not isinstance(meta, dict):
                raise ValueError(f"{path}: metadata must be a JSON object.")
            if meta.get("format", _FORMAT) != _FORMAT or meta.get("version", 1) != 1:
                raise ValueError(
                    f"{path}: metadata says format {meta.get('format')!r}, version "
                    f"{meta.get('version')!r}; this jaxcrn reads {_FORMAT!r} version "
                    "1 (a file of another program, or of a newer jaxcrn)."
                )
        found: dict[str, dict[int, np.ndarray]] = {"W": {}, "b": {}}
        unexpected = []
        for name in sorted(names):
            m = _ARRAY_NAME.fullmatch(name)
            if m is None or len(m[2]) > 6:
                unexpected.append(name)
            else:
                found[m[1]][int(m[2])] = _read_member(zf, members[name], name, path)
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
        if w.ndim != 2 or 0 in w.shape:
            raise ValueError(
                f"{path}: W{i} has shape {w.shape}; expected (fan_in, fan_out), both "
                ">= 1."
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
        if not isinstance(quantization, str):
            raise ValueError(f"quantization must be a string, got {quantization!r}.")
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            raise ValueError(f"threshold must be a number, got {threshold!r}.")
        _check_quantization(quantization, float(threshold))
    except ValueError as e:
        raise ValueError(f"{os.fspath(path)}: metadata: {e}") from None
    if quantization == "binary" and has_zero:
        raise ValueError(
            f"{os.fspath(path)}: the metadata says quantization 'binary' but some "
            "weights are 0; set it to 'ternary' (or drop the metadata)."
        )
    dropout = {}
    for key in ("dropout_in", "dropout_hidden"):
        v = meta.get(key, 0.0)
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v < 1:
            raise ValueError(
                f"{os.fspath(path)}: metadata: {key} must be a number in [0, 1), got "
                f"{v!r}."
            )
        dropout[key] = float(v)
    sizes = [params[0][0].shape[0], *(w.shape[1] for w, _ in params)]
    if "layer_sizes" in meta and meta["layer_sizes"] != sizes:
        raise ValueError(
            f"{os.fspath(path)}: metadata: layer_sizes {meta['layer_sizes']!r} "
            f"contradicts the arrays' {sizes}."
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
    return BinaryMLP(tuple(layers), dropout["dropout_in"], dropout["dropout_hidden"])


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

    def write(f):
        f.write((json.dumps(header) + "\n").encode())
        eqx.tree_serialise_leaves(f, model)

    write_output(path, write, overwrite=overwrite)


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
