import gzip
import os

import numpy as np
import pytest

from jaxcrn import datasets
from jaxcrn.datasets import Dataset, Split, derive_virus_table


# ---------------------------------------------------------------------------- iris


def test_iris_is_the_uci_copy():
    data = datasets.iris()
    assert data.name == "iris" and data.class_names == (
        "setosa",
        "versicolor",
        "virginica",
    )
    assert data.train.x.shape == (150, 4) and data.train.x.dtype == np.float64
    assert data.train.y.dtype == np.int64
    assert np.bincount(data.train.y).tolist() == [50, 50, 50]
    for s in ("valid", "test"):
        np.testing.assert_array_equal(data.split(s).x, data.train.x)
        np.testing.assert_array_equal(data.split(s).y, data.train.y)
    mean = np.array(data.preprocessing["mean"])
    std = np.array(data.preprocessing["std"])
    raw = data.train.x * std + mean
    # rows 34 and 37 (0-based) of the UCI file; scikit-learn's copy differs there
    np.testing.assert_allclose(raw[34], [4.9, 3.1, 1.5, 0.1], atol=1e-12)
    np.testing.assert_allclose(raw[37], [4.9, 3.1, 1.5, 0.1], atol=1e-12)
    # published statistics of the UCI file
    np.testing.assert_allclose(mean, [5.843333, 3.054, 3.758667, 1.198667], atol=1e-6)
    np.testing.assert_allclose(
        raw.std(axis=0, ddof=1), [0.828066, 0.433594, 1.764420, 0.763161], atol=1e-6
    )
    class_means = [raw[data.train.y == c].mean(axis=0) for c in range(3)]
    np.testing.assert_allclose(
        class_means,
        [
            [5.006, 3.418, 1.464, 0.244],
            [5.936, 2.770, 4.260, 1.326],
            [6.588, 2.974, 5.552, 2.026],
        ],
        atol=1e-12,
    )
    # standardised over all 150 with the population std
    np.testing.assert_allclose(data.train.x.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(data.train.x.std(axis=0), 1, atol=1e-12)
    # 147 distinct rows: (4.9, 3.1, 1.5, 0.1) three times, (5.8, 2.7, 5.1, 1.9) twice
    assert len(np.unique(np.round(raw, 6), axis=0)) == 147


# --------------------------------------------------------------------------- virus

# From the README of the raw-data folder (checksums of the derivation).
VIRUS_MEANS = [
    5.1181013,
    5.04289399,
    3.70547106,
    6.52296333,
    8.48541735,
    3.44832349,
    7.96147565,
    8.83862837,
    9.40301174,
    11.01771623,
]
VIRUS_STDS = [
    0.47350425,
    0.52862456,
    0.34819424,
    0.44282316,
    0.43297173,
    0.30697969,
    0.3937371,
    0.52990766,
    0.40342688,
    0.54500288,
]


@pytest.fixture(scope="module")
def virus():
    return datasets.virus()


def test_virus_shipped_table(virus):
    assert virus.class_names == ("h1n1", "h3n2", "hrv", "rsv")
    assert virus.n_features == 10 and virus.n_classes == 4
    counts = {
        s: np.bincount(virus.split(s).y, minlength=4).tolist()
        for s in ("train", "valid", "test")
    }
    assert counts == {
        "train": [202, 156, 120, 80],
        "valid": [12, 8, 11, 3],
        "test": [46, 28, 20, 10],
    }
    np.testing.assert_allclose(virus.preprocessing["mean"], VIRUS_MEANS, rtol=2e-7)
    np.testing.assert_allclose(virus.preprocessing["std"], VIRUS_STDS, rtol=2e-7)
    assert virus.preprocessing["features"][:2] == ["10000_at", "10002_at"]
    ids = [virus.split(s).ids for s in ("train", "valid", "test")]
    all_ids = np.concatenate(ids)
    assert len(set(all_ids)) == 696 and all(i.startswith("GSM") for i in all_ids)
    x = np.concatenate([virus.split(s).x for s in ("train", "valid", "test")])
    # standardised over all 698 samples, of which 2 are in no split
    assert abs(x.mean()) < 0.01 and 0.95 < x.std() < 1.05


def test_virus_table_matches_the_raw_files(shared_datasets, virus):
    folder = os.path.join(shared_datasets, "virus-gse73072")
    if not os.path.isdir(folder):
        pytest.skip("raw GSE73072 files not found")
    derived = derive_virus_table(shared_datasets)
    unchecked = derive_virus_table(shared_datasets, check=False)  # what regenerates
    np.testing.assert_array_equal(unchecked["raw"], derived["raw"])
    shipped = datasets._virus_shipped()
    assert derived["probes"] == shipped["probes"]
    assert derived["label_names"] == shipped["label_names"]
    np.testing.assert_array_equal(derived["accession"], shipped["accession"])
    np.testing.assert_array_equal(derived["label"], shipped["label"])
    np.testing.assert_array_equal(derived["raw"], shipped["raw"])
    np.testing.assert_array_equal(derived["perm"], shipped["perm"])
    assert derived["x"].shape == (698, 10)
    assert np.bincount(derived["label"]).tolist() == [260, 193, 151, 94]
    again = datasets.virus(shared_datasets)  # the raw folder's parent also works
    for s in ("train", "valid", "test"):
        np.testing.assert_array_equal(again.split(s).x, virus.split(s).x)
        np.testing.assert_array_equal(again.split(s).y, virus.split(s).y)
    # the two samples the reference split leaves out: perm[558] = 676, perm[593] = 425
    left_out = set(derived["accession"][[676, 425]])
    for s in ("train", "valid", "test"):
        assert not left_out & set(virus.split(s).ids)


def _edited_raw_copy(shared_datasets, tmp_path, name, edit):
    import shutil

    folder = os.path.join(shared_datasets, "virus-gse73072")
    if not os.path.isdir(folder):
        pytest.skip("raw GSE73072 files not found")
    copy = tmp_path / "raw"
    shutil.copytree(folder, copy)
    path = copy / name
    path.write_text(edit(path.read_text()), encoding="utf-8")
    return copy


def _cells(edit):
    """An edit of the 4labels table as rows of cells."""

    def apply(text):
        rows = [line.split(",") for line in text.split("\n")]
        edit(rows)
        return "\n".join(",".join(r) for r in rows)

    return apply


_T4 = "icml2020dataset_GSE73072_4labels.csv"


def _kept(value):
    """Set probe 3 of the first sample the table keeps to `value`."""

    def edit(rows):
        rows[3][rows[0].index(datasets._virus_shipped()["accession"][0])] = value

    return _cells(edit)


@pytest.mark.parametrize(
    "name, edit, message",
    [
        # each of these loaded, or trained a model, with other numbers and no word
        (_T4, _kept("nan"), "'nan' is not a finite"),
        (_T4, _kept("5_5"), "'5_5' is not a finite"),
        (
            _T4,
            _cells(lambda r: r[3].append("4.2")),
            "line 4: .* cells where the header",
        ),
        (_T4, _cells(lambda r: r[11].__setitem__(7, "H1N1")), "'H1N1', not one of"),
        (_T4, _cells(lambda r: r.insert(11, ["1_at"] + r[10][1:])), "13 rows"),
        (_T4, _cells(lambda r: r.insert(1, r.pop(2))), "the probes are"),
        (_T4, lambda t: t.replace("4.4313", "4.4314"), "another raw for sample"),
        # these raised bare IndexError/KeyError/TypeError (an "internal error")
        (_T4, lambda t: "", "4labels.csv: empty"),
        ("dmp_split_permutation.json", lambda t: "{}", "expected a JSON object"),
        (
            "icml2020dataset_GSE73072_DEE3.csv",
            lambda t: t.rstrip("\r\n") + "\n9,0,1,1,x\n",
            "5 cells where the header has 6",
        ),
    ],
)
def test_edited_raw_virus_files_are_refused(
    shared_datasets, tmp_path, name, edit, message
):
    copy = _edited_raw_copy(shared_datasets, tmp_path, name, edit)
    with pytest.raises(ValueError, match=message):
        datasets.virus(copy)


def test_virus_missing_raw_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="icml2020dataset_GSE73072_4labels.csv"):
        datasets.virus(tmp_path)


# ------------------------------------------------------------------------ mnist14


@pytest.fixture(scope="module")
def mnist(shared_datasets):
    if not os.path.isdir(os.path.join(shared_datasets, "mnist")):
        pytest.skip("MNIST files not found")
    return datasets.mnist14(shared_datasets)


def test_mnist14(mnist, shared_datasets):
    assert mnist.train.x.shape == (50_000, 196) and mnist.valid.x.shape == (10_000, 196)
    assert mnist.test.x.shape == (10_000, 196)
    train_labels = np.concatenate([mnist.train.y, mnist.valid.y])
    assert np.bincount(train_labels).tolist() == [
        5923,
        6742,
        5958,
        6131,
        5842,
        5421,
        5918,
        6265,
        5851,
        5949,
    ]
    assert np.bincount(mnist.test.y).tolist() == [
        980,
        1135,
        1032,
        1010,
        982,
        892,
        958,
        1028,
        974,
        1009,
    ]
    assert mnist.train.y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    # centred per pixel: train over all 60,000 images, test over the 10,000
    x_all = np.concatenate([mnist.train.x, mnist.valid.x])
    np.testing.assert_allclose(x_all.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(mnist.test.x.mean(axis=0), 0, atol=1e-12)
    # mean pixel of the 14x14 means equals the published 28x28 mean intensity / 255
    assert np.mean(mnist.preprocessing["mean_train_14"]) == pytest.approx(
        33.3184 / 255, abs=1e-5
    )
    assert np.mean(mnist.preprocessing["mean_test_14"]) == pytest.approx(
        33.7912 / 255, abs=1e-5
    )
    # block averaging: the first test image recomputed by hand
    with gzip.open(
        os.path.join(shared_datasets, "mnist", "t10k-images-idx3-ubyte.gz")
    ) as f:
        img = np.frombuffer(f.read(), np.uint8, offset=16)[:784].reshape(28, 28)
    by_hand = img.reshape(14, 2, 14, 2).mean(axis=(1, 3)).ravel() / 255
    np.testing.assert_allclose(
        mnist.test.x[0], by_hand - mnist.preprocessing["mean_test_14"], atol=1e-12
    )


@pytest.mark.slow
def test_mnist14_train_centering(mnist, shared_datasets):
    other = datasets.mnist14(shared_datasets, test_centering="train")
    np.testing.assert_array_equal(other.train.x, mnist.train.x)
    shift = np.subtract(
        mnist.preprocessing["mean_test_14"], other.preprocessing["mean_test_14"]
    )
    np.testing.assert_allclose(other.test.x, mnist.test.x + shift, atol=1e-12)


def test_mnist_missing_files_say_what_to_put_where(tmp_path, monkeypatch):
    monkeypatch.delenv("JAXCRN_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="JAXCRN_DATA") as e:
        datasets.mnist14()
    assert "t10k-images-idx3-ubyte" in str(e.value)
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").write_bytes(b"")
    monkeypatch.setenv("JAXCRN_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="missing") as e:
        datasets.mnist14()
    for name in (
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        assert name in str(e.value)


def test_idx_reader_rejects_corrupt_files(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes((2049).to_bytes(4, "big") + (5).to_bytes(4, "big") + b"\x01" * 3)
    with pytest.raises(ValueError, match="truncated"):
        datasets._read_idx(str(path), 2049)
    with pytest.raises(ValueError, match="magic number 2049, expected 2051"):
        datasets._read_idx(str(path), 2051)
    path.write_bytes((2049).to_bytes(4, "big") + (3).to_bytes(4, "big") + b"\x01" * 3)
    assert datasets._read_idx(str(path), 2049).tolist() == [1, 1, 1]
    # a truncated download: gzip's own EOFError, which named no file
    gz = tmp_path / "labels.gz"
    gz.write_bytes(gzip.compress(path.read_bytes())[:-6])
    with pytest.raises(ValueError, match="labels.gz: not a readable gzip file"):
        datasets._read_idx(str(gz), 2049)


def test_mnist_messages_name_the_folder_and_the_one_file_missing(tmp_path, monkeypatch):
    for name in datasets._MNIST_FILES.values():
        if name != "t10k-labels-idx1-ubyte":
            (tmp_path / f"{name}.gz").write_bytes(b"")
    with pytest.raises(FileNotFoundError) as e:
        datasets.mnist14(tmp_path)
    assert "has 3 of the four, missing t10k-labels-idx1-ubyte. Put" in str(e.value)
    # a file and its .gz that differ: the .gz was read without a word
    labels = tmp_path / "t10k-labels-idx1-ubyte"
    header = (2049).to_bytes(4, "big") + (3).to_bytes(4, "big")
    labels.write_bytes(header + b"\x07\x01\x02")
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(header + b"\x08\x01\x02")
    )
    with pytest.raises(ValueError, match="both there but hold different data"):
        datasets.mnist14(tmp_path)
    # an empty JAXCRN_DATA is unset (it read the working folder), as for virus
    monkeypatch.setenv("JAXCRN_DATA", "")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="no MNIST folder given"):
        datasets.mnist14()


# -------------------------------------------------------------------------- misc


def test_load_by_name():
    assert datasets.load("iris").name == "iris"
    assert len(datasets.load("virus").test) == 104
    with pytest.raises(ValueError, match="expected one of iris, virus, mnist14"):
        datasets.load("cifar")


def test_split_and_dataset_validate():
    with pytest.raises(ValueError, match="expected \\(3,\\)"):
        Split(np.zeros((3, 2)), np.zeros(2, np.int64))
    split = Split(np.zeros((3, 2)), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="labels must lie in 0..1"):
        Dataset("d", split, split, split, ("a", "b"))
    data = Dataset("d", split, split, split, ("a", "b", "c"))
    with pytest.raises(ValueError, match="unknown split"):
        data.split("training")
