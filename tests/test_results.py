"""SimulationResult names, tables (pandas, xarray) and files (.npz)."""

import os
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcrn import SimulationResult, compile_crn, parse_crn, simulate, simulate_batch


pd = pytest.importorskip("pandas")

TEXT = """
X -> Y  [k=0.5]
Y -> Z
input x = X
output y = Y
output z = Z
"""


@pytest.fixture(scope="module")
def net():
    return compile_crn(parse_crn(TEXT))


@pytest.fixture(scope="module")
def batch(net):
    x = np.array([[1.0], [2.0], [3.0]])
    return simulate_batch(net, x, 8.0, saveat=5, keep_states=True)


@pytest.fixture(scope="module")
def single(net):
    y0 = net.initial_state(jnp.array([2.0]))
    return simulate(net, y0, jnp.asarray(8.0), saveat=5)


def test_names_are_filled_by_simulate_and_simulate_batch(net, batch, single):
    for res in (batch, single):
        assert res.species_names == net.species == ("X", "Y", "Z")
        assert res.output_names == ("y", "z")
        assert res.class_names == ()
    # vmap keeps them (static fields)
    y0 = jax.vmap(net.initial_state)(jnp.array([[1.0], [2.0]]))
    res = jax.eval_shape(jax.vmap(lambda y: simulate(net, y, jnp.asarray(1.0))), y0)
    assert res.output_names == ("y", "z")


def test_with_names_checks_lengths(batch):
    named = batch.with_names(classes=["low", "high"])
    assert named.class_names == ("low", "high") and named.output_names == ("y", "z")
    with pytest.raises(
        ValueError, match="class_names has 3 entries but the result has 2 outputs"
    ):
        batch.with_names(classes=["a", "b", "c"])


def test_trajectory_table(batch):
    df = batch.to_dataframe()
    assert list(df.columns) == ["sample", "time", "y", "z", "status"]
    assert len(df) == 3 * 5
    assert df["sample"].tolist() == [0] * 5 + [1] * 5 + [2] * 5
    np.testing.assert_array_equal(df["time"], np.tile(np.linspace(0, 8, 5), 3))
    np.testing.assert_array_equal(df["y"], np.asarray(batch.outputs)[..., 0].ravel())
    assert set(df["status"]) == {"ok"}


def test_trajectory_table_with_species(single):
    df = single.to_dataframe()
    assert list(df.columns) == ["sample", "time", "y", "z", "X", "Y", "Z", "status"]
    # the closed form of X -> Y at k = 0.5 from X0 = 2
    np.testing.assert_allclose(df["X"], 2 * np.exp(-0.5 * df["time"]), rtol=1e-5)
    np.testing.assert_array_equal(df["Y"], df["y"])  # output y = Y
    assert list(single.to_dataframe(species=False).columns) == [
        "sample",
        "time",
        "y",
        "z",
        "status",
    ]


def test_final_table(batch):
    df = batch.with_names(classes=["low", "high"]).to_dataframe("final")
    assert list(df.columns) == [
        "sample",
        "converged",
        "t_final",
        "t_converged",
        "num_steps",
        "num_rejected",
        "y",
        "z",
        "X",
        "Y",
        "Z",
        "argmax",
        "class",
        "status",
    ]
    out = np.asarray(batch.outputs_final)
    np.testing.assert_array_equal(df["argmax"], out.argmax(1))
    assert df["class"].tolist() == [["low", "high"][i] for i in out.argmax(1)]
    # conservation: X + Y + Z = x
    np.testing.assert_allclose(df["X"] + df["Y"] + df["Z"], [1.0, 2.0, 3.0])


def test_name_collision_is_an_error(single):
    res = single.with_names(outputs=["X", "z"])  # an output named like a species
    with pytest.raises(ValueError, match="'X' names both an output and a species"):
        res.to_dataframe()
    assert list(res.to_dataframe(outputs=False).columns) == [
        "sample",
        "time",
        "X",
        "Y",
        "Z",
        "status",
    ]


def test_bad_kind(batch):
    with pytest.raises(ValueError, match="kind='wide' is not one of"):
        batch.to_dataframe("wide")


def test_xarray(batch, single):
    xr = pytest.importorskip("xarray")
    ds = batch.to_xarray()
    assert isinstance(ds, xr.Dataset)
    assert dict(ds.sizes) == {"sample": 3, "time": 5, "output": 2, "species": 3}
    assert ds.output.values.tolist() == ["y", "z"]
    np.testing.assert_array_equal(
        ds.outputs.sel(output="z"), np.asarray(batch.outputs)[..., 1]
    )
    np.testing.assert_array_equal(
        ds.y_final.sel(species="X"), np.asarray(batch.y_final)[:, 0]
    )
    assert ds.status.values.tolist() == ["ok"] * 3
    one = single.to_xarray()
    assert "sample" not in one.dims and dict(one.ys.sizes) == {"time": 5, "species": 3}


def _assert_same(a: SimulationResult, b: SimulationResult):
    for f in (
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
    ):
        x, y = getattr(a, f), getattr(b, f)
        if x is None:
            assert y is None
        else:
            np.testing.assert_array_equal(np.asarray(x), y)
            assert np.asarray(x).dtype == y.dtype
    assert (a.species_names, a.output_names, a.class_names) == (
        b.species_names,
        b.output_names,
        b.class_names,
    )


@pytest.mark.parametrize("which", ["batch", "single"])
def test_save_load_round_trip(tmp_path, batch, single, which):
    res = (batch if which == "batch" else single).with_names(classes=["a", "b"])
    path = tmp_path / "run.npz"
    res.save(path)
    assert os.listdir(tmp_path) == ["run.npz"]  # no temporary file left
    back = SimulationResult.load(path)
    _assert_same(res, back)
    # the file is a plain npz without pickles
    with np.load(path, allow_pickle=False) as f:
        assert str(f["format"]) == "jaxcrn.SimulationResult/1"


def test_save_never_overwrites_and_adds_no_suffix(tmp_path, batch):
    path = tmp_path / "run"  # numpy would write run.npz; we write what was asked
    batch.save(path)
    assert os.listdir(tmp_path) == ["run"]
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        batch.save(path)
    assert path.read_bytes() == before
    batch.with_names(classes=["p", "q"]).save(path, overwrite=True)
    assert SimulationResult.load(path).class_names == ("p", "q")
    with pytest.raises(IsADirectoryError):
        batch.save(tmp_path)


def test_load_rejects_other_files(tmp_path):
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="other.npz is not a saved SimulationResult"):
        SimulationResult.load(tmp_path / "other.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ValueError, match="not a readable .npz file"):
        SimulationResult.load(tmp_path / "text.npz")
    # an object array (a pickle) is refused, never unpickled
    np.savez(
        tmp_path / "obj.npz",
        format=np.asarray("jaxcrn.SimulationResult/1"),
        ts=np.array([object()], dtype=object),
    )
    with pytest.raises(ValueError, match="obj.npz is not a saved SimulationResult"):
        SimulationResult.load(tmp_path / "obj.npz")
    with pytest.raises(FileNotFoundError, match="no such file"):
        SimulationResult.load(tmp_path / "missing.npz")


def test_load_checks_shapes(tmp_path, batch):
    path = tmp_path / "run.npz"
    batch.save(path)
    with zipfile.ZipFile(path) as z:
        entries = {n[:-4]: np.load(z.open(n)) for n in z.namelist()}
    entries["t_final"] = entries["t_final"][:2]
    np.savez(tmp_path / "bad.npz", **entries)
    with pytest.raises(ValueError, match=r"t_final has shape \(2,\), expected \(3,\)"):
        SimulationResult.load(tmp_path / "bad.npz")
    # arrays that disagree with each other, and status codes that are none: these
    # loaded, then to_dataframe failed far from the file (or built a wrong table)
    with zipfile.ZipFile(path) as z:
        good = {n[:-4]: np.load(z.open(n)) for n in z.namelist()}
    n_t = good["ts"].shape[-1]
    for edit, message in [
        (
            dict(outputs=good["outputs"][:, :-1]),
            f"outputs has shape .*, expected \\(3, {n_t}",
        ),
        (dict(ts=good["ts"][:, 0]), "expected the batch shape and one more axis"),
        (dict(status=np.array([0, 99, 0])), r"status\[1\] is 99, not a Status code"),
        (dict(status=np.array([0.0, 1.5, 0.0])), "status has dtype float64; expected"),
    ]:
        np.savez(tmp_path / "bad.npz", **(good | edit))
        with pytest.raises(ValueError, match=message):
            SimulationResult.load(tmp_path / "bad.npz")


@pytest.mark.slow
def test_names_in_the_command_line_json(tmp_path, capsys):
    import json

    from jaxcrn._cli import main

    crn = tmp_path / "net.crn"
    crn.write_text(TEXT)
    csv = tmp_path / "x.csv"
    csv.write_text("x\n1\n2\n")
    assert (
        main(["simulate", str(crn), "--inputs", str(csv), "--json", "--t1", "5"]) == 0
    )
    obj = json.loads(capsys.readouterr().out)
    assert obj["input_names"] == ["x"] and obj["output_names"] == ["y", "z"]
    assert [len(r["outputs"]) for r in obj["rows"]] == [2, 2]
