"""`SimulationResult` as tables and files: names, DataFrames, xarray, `.npz`.

The methods of `SimulationResult` (`with_names`, `to_dataframe`, `to_xarray`,
`save`, `load`) call these functions; pandas and xarray are imported only here,
when asked for (the `tables` extra).
"""

import os
from collections.abc import Sequence

import numpy as np


FORMAT = "jaxcrn.SimulationResult/1"
_ARRAYS = (
    "ts",
    "ys",
    "outputs",
    "y_final",
    "outputs_final",
    "t_final",
    "status",
    "converged",
    "t_converged",
    "num_steps",
    "num_rejected",
)
_NAMES = ("species_names", "output_names", "class_names")


def _names(values, what: str) -> tuple[str, ...]:
    out = tuple(values)
    for v in out:
        if not isinstance(v, str):
            raise TypeError(f"{what} must be strings, got {v!r}.")
    return out


def with_names(result, species, outputs, classes):
    import dataclasses

    changes = {}
    if species is not None:
        changes["species_names"] = _names(species, "species names")
    if outputs is not None:
        changes["output_names"] = _names(outputs, "output names")
    if classes is not None:
        changes["class_names"] = _names(classes, "class names")
    new = dataclasses.replace(result, **changes)
    _check_names(new)
    return new


def _check_names(result) -> None:
    n_out = np.shape(result.outputs_final)[-1]
    n_species = np.shape(result.y_final)[-1]
    checks = [
        ("output_names", n_out, "outputs"),
        ("class_names", n_out, "outputs"),
    ]
    if n_species:  # simulate_batch without keep_states keeps no species values
        checks.append(("species_names", n_species, "species"))
    for field, n, what in checks:
        names = getattr(result, field)
        if names and len(names) != n:
            raise ValueError(
                f"{field} has {len(names)} entries but the result has {n} {what}."
            )


def _pandas():
    try:
        import pandas as pd
    except ImportError as e:
        raise ImportError(
            "to_dataframe needs pandas: pip install 'jaxcrn[tables]' (or pip "
            "install pandas)."
        ) from e
    return pd


def _batched(result) -> dict[str, np.ndarray | None]:
    """Every array of `result` as NumPy with a leading sample axis."""
    single = np.ndim(result.status) == 0
    out: dict[str, np.ndarray | None] = {}
    for name in _ARRAYS:
        value = getattr(result, name)
        if value is None:
            out[name] = None
            continue
        a = np.asarray(value)
        out[name] = a[None] if single else a
    return out


def _column_names(prefix: str, names: Sequence[str], n: int) -> list[str]:
    return list(names) if len(names) == n else [f"{prefix}{i}" for i in range(n)]


def _status_names(status: np.ndarray):
    from ._simulate import Status

    return [Status(int(s)).name.lower() for s in status]


def to_dataframe(result, kind: str = "trajectories", *, species=True, outputs=True):
    pd = _pandas()
    if kind not in ("trajectories", "final"):
        raise ValueError(
            f"kind={kind!r} is not one of 'trajectories' (one row per sample and "
            "time) or 'final' (one row per sample)."
        )
    a = _batched(result)
    n = a["status"].shape[0]
    status = pd.Categorical(_status_names(a["status"]))
    columns: dict[str, object] = {}
    if kind == "trajectories":
        ts = a["ts"]
        n_times = ts.shape[1]
        columns["sample"] = np.repeat(np.arange(n), n_times)
        columns["time"] = ts.reshape(-1)
        blocks = []
        if outputs:
            out = a["outputs"]
            names = _column_names("output", result.output_names, out.shape[-1])
            blocks.append((names, out.reshape(n * n_times, -1)))
        if species and a["ys"] is not None:
            ys = a["ys"]
            names = _column_names("species", result.species_names, ys.shape[-1])
            blocks.append((names, ys.reshape(n * n_times, -1)))
        status = status.take(np.repeat(np.arange(n), n_times))  # pyright: ignore
    else:
        columns["sample"] = np.arange(n)
        for key in ("converged", "t_final", "t_converged", "num_steps", "num_rejected"):
            columns[key] = a[key]
        blocks = []
        out = a["outputs_final"]
        if outputs:
            names = _column_names("output", result.output_names, out.shape[-1])
            blocks.append((names, out))
        if species and a["y_final"].shape[-1]:
            names = _column_names(
                "species", result.species_names, a["y_final"].shape[-1]
            )
            blocks.append((names, a["y_final"]))
    tail: dict[str, object] = {}
    if kind == "final" and a["outputs_final"].shape[-1]:
        out = a["outputs_final"]
        finite = np.isfinite(out).all(axis=-1)
        am = np.where(finite, np.argmax(np.where(finite[:, None], out, 0), axis=-1), -1)
        tail["argmax"] = am  # -1 where the sample failed (NaN outputs)
        if result.class_names:
            tail["class"] = pd.Categorical.from_codes(
                am, categories=list(result.class_names)
            )
    for names, values in blocks:
        for j, name in enumerate(names):
            if name in columns:
                raise ValueError(
                    f"{name!r} names both an output and a species (or a column of "
                    "the table); pass species=False or outputs=False to leave one "
                    "out, or rename with with_names."
                )
            columns[name] = values[:, j]
    columns.update(tail)
    columns["status"] = status
    return pd.DataFrame(columns)


def to_xarray(result):
    try:
        import xarray as xr
    except ImportError as e:
        raise ImportError(
            "to_xarray needs xarray: pip install 'jaxcrn[tables]' (or pip install "
            "xarray)."
        ) from e
    single = np.ndim(result.status) == 0
    a = _batched(result)
    ts = a["ts"]
    n, n_times = ts.shape
    out_names = _column_names("output", result.output_names, a["outputs"].shape[-1])
    coords: dict[str, object] = {"sample": np.arange(n), "output": out_names}
    data: dict[str, object] = {}
    same_times = bool(np.all(ts == ts[:1]))
    if same_times:
        coords["time"] = ts[0]
    else:  # samples saved at different times: time is an index, ts a variable
        data["ts"] = (("sample", "time"), ts)
    data["outputs"] = (("sample", "time", "output"), a["outputs"])
    data["outputs_final"] = (("sample", "output"), a["outputs_final"])
    n_species = a["y_final"].shape[-1] if a["ys"] is None else a["ys"].shape[-1]
    if n_species:
        coords["species"] = _column_names("species", result.species_names, n_species)
    if a["ys"] is not None:
        data["ys"] = (("sample", "time", "species"), a["ys"])
    if a["y_final"].shape[-1]:
        data["y_final"] = (("sample", "species"), a["y_final"])
    for key in ("t_final", "converged", "t_converged", "num_steps", "num_rejected"):
        data[key] = (("sample",), a[key])
    data["status"] = (("sample",), np.asarray(_status_names(a["status"])))
    ds = xr.Dataset(data, coords=coords)
    if result.class_names:
        ds.attrs["class_names"] = list(result.class_names)
    if single:
        ds = ds.isel(sample=0, drop=True)
    return ds


def to_arrays(result) -> dict[str, np.ndarray]:
    """The `.npz` entries of a result (what `save` writes and `load` reads)."""
    arrays: dict[str, np.ndarray] = {"format": np.asarray(FORMAT)}
    for name in _ARRAYS:
        value = getattr(result, name)
        if value is not None:
            arrays[name] = np.asarray(value)
    for name in _NAMES:
        arrays[name] = np.asarray(getattr(result, name), dtype=np.str_).reshape(-1)
    return arrays


def save(result, path, *, overwrite: bool = False) -> None:
    from ._files import write_output

    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a directory; give a file name.")
    arrays = to_arrays(result)
    # a file object: numpy adds no ".npz"
    write_output(path, lambda f: np.savez(f, **arrays), overwrite=overwrite)


def load(path):
    from ._simulate import SimulationResult, Status

    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a directory, not a saved result.")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file.")
    import zipfile

    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path} is not a saved SimulationResult (not a readable .npz file); "
            "results are written by SimulationResult.save."
        )
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except ValueError:  # object arrays (pickles) are refused, never unpickled
        raise ValueError(
            f"{path} is not a saved SimulationResult: it holds object arrays "
            "(pickled data), which jaxcrn never loads."
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(
            f"{path} is not a saved SimulationResult (not a readable .npz file: {e})."
        ) from None
    fmt = data.get("format")
    if fmt is None or fmt.shape != () or str(fmt) != FORMAT:
        raise ValueError(
            f"{path} is not a saved SimulationResult (its 'format' entry is "
            f"{None if fmt is None else str(fmt)!r}, expected {FORMAT!r})."
        )
    missing = [k for k in _ARRAYS if k != "ys" and k not in data]
    if missing:
        raise ValueError(f"{path}: missing entries {', '.join(missing)}.")
    batch = data["status"].shape
    for key in ("t_final", "converged", "t_converged", "num_steps", "num_rejected"):
        if data[key].shape != batch:
            raise ValueError(
                f"{path}: {key} has shape {data[key].shape}, expected {batch} (the "
                "shape of status)."
            )
    for key in ("ts", "outputs", "y_final", "outputs_final") + (
        ("ys",) if "ys" in data else ()
    ):
        if data[key].shape[: len(batch)] != batch:
            raise ValueError(
                f"{path}: {key} has shape {data[key].shape}, which does not start "
                f"with the batch shape {batch}."
            )
    for key in _ARRAYS:
        if key in data and data[key].dtype.kind not in "biuf":
            raise ValueError(
                f"{path}: {key} has dtype {data[key].dtype}; expected numbers."
            )
    # the arrays agree with each other: times, species and outputs
    nb = len(batch)
    n_out = data["outputs_final"].shape[nb:]
    n_sp = data["y_final"].shape[nb:]
    if data["ts"].ndim != nb + 1 or len(n_out) != 1 or len(n_sp) != 1:
        raise ValueError(
            f"{path}: ts, y_final and outputs_final have shapes {data['ts'].shape}, "
            f"{data['y_final'].shape} and {data['outputs_final'].shape}; expected "
            "the batch shape and one more axis (times, species, outputs)."
        )
    n_t = data["ts"].shape[-1]
    want = {"outputs": (*batch, n_t, *n_out), "ys": (*batch, n_t, *n_sp)}
    for key, shape in want.items():
        if key in data and data[key].shape != shape:
            raise ValueError(
                f"{path}: {key} has shape {data[key].shape}, expected {shape} (from "
                "ts and the final values)."
            )
    for key in ("status", "num_steps", "num_rejected"):
        if data[key].dtype.kind not in "iu":
            raise ValueError(
                f"{path}: {key} has dtype {data[key].dtype}; expected integers."
            )
    bad = ~np.isin(data["status"], [int(c) for c in Status])
    if bad.any():
        i = tuple(int(j) for j in np.unravel_index(int(np.argmax(bad)), batch))
        raise ValueError(
            f"{path}: status{list(i)} is {int(data['status'][i])}, not a Status code "
            f"({', '.join(f'{int(c)} {c.name}' for c in Status)})."
        )
    names = {}
    for key in _NAMES:
        v = data.get(key, np.zeros(0, np.str_))
        if v.dtype.kind != "U" or v.ndim != 1:
            raise ValueError(f"{path}: {key} must be a 1-D array of strings.")
        names[key] = tuple(str(s) for s in v)
    result = SimulationResult(
        **{k: data.get(k) for k in _ARRAYS},  # pyright: ignore[reportArgumentType]
        **names,
    )
    try:
        _check_names(result)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return result
