"""The three datasets of Vasic et al. (2020): iris, virus (GSE73072) and MNIST-14.

Every loader returns a `Dataset` of float64 inputs and int64 labels, already
preprocessed: these are exactly the inputs of the network, and so of the CRN. The
preprocessing itself is described in `Dataset.preprocessing` (a JSON-able dict) and is
stored with trained models.

Nothing here downloads. Iris and the derived virus table ship inside the package
(`jaxcrn/data/`); MNIST is read from the four official IDX files in a folder that you
pass, or that `$JAXCRN_DATA` points to.
"""

import csv
import dataclasses
import gzip
import io
import json
import os
import zlib
from importlib import resources

import numpy as np

from ._crn import DECIMAL_NUMBER


__all__ = [
    "Dataset",
    "Split",
    "derive_virus_table",
    "iris",
    "load",
    "mnist14",
    "virus",
]

_SPLITS = ("train", "valid", "test")


@dataclasses.dataclass(frozen=True, eq=False)
class Split:
    """One split of a dataset.

    Attributes:
        x: inputs, shape `(n, features)`, float64, already preprocessed.
        y: class indices, shape `(n,)`, int64.
        ids: optional sample identifiers, shape `(n,)` (e.g. GEO accessions).
    """

    x: np.ndarray
    y: np.ndarray
    ids: np.ndarray | None = None

    def __post_init__(self):
        x = np.asarray(self.x, dtype=np.float64)
        y = np.asarray(self.y)
        if x.ndim != 2:
            raise ValueError(f"x must have shape (n, features), got {x.shape}.")
        if y.shape != (x.shape[0],):
            raise ValueError(
                f"y has shape {y.shape} but x has {x.shape[0]} rows; expected "
                f"({x.shape[0]},)."
            )
        if y.size and not np.issubdtype(y.dtype, np.integer):
            if not np.all(y == np.round(y)):
                raise ValueError("y must hold integer class indices.")
        y = y.astype(np.int64)
        if self.ids is not None and np.shape(self.ids) != (x.shape[0],):
            raise ValueError(
                f"ids has shape {np.shape(self.ids)}; expected ({x.shape[0]},)."
            )
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)

    def __len__(self) -> int:
        return self.x.shape[0]


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """A dataset split into train/valid/test, with its preprocessing recorded.

    Attributes:
        name: `"iris"`, `"virus"` or `"mnist14"` (or your own).
        train, valid, test: the three `Split`s.
        class_names: one name per class, in label order.
        preprocessing: a JSON-able description of how raw data became `x`.

    Example:
        >>> from jaxcrn import datasets
        >>> data = datasets.iris()
        >>> data.n_features, data.n_classes, len(data.split("test"))
        (4, 3, 150)
    """

    name: str
    train: Split
    valid: Split
    test: Split
    class_names: tuple[str, ...]
    preprocessing: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        nf = {s: getattr(self, s).x.shape[1] for s in _SPLITS}
        if len(set(nf.values())) != 1:
            raise ValueError(f"splits have different numbers of features: {nf}.")
        for s in _SPLITS:
            y = getattr(self, s).y
            if y.size and (y.min() < 0 or y.max() >= len(self.class_names)):
                raise ValueError(
                    f"{s} labels must lie in 0..{len(self.class_names) - 1} "
                    f"(one per class name), got {y.min()}..{y.max()}."
                )

    def split(self, name: str) -> Split:
        """Return the split called `name` (`"train"`, `"valid"` or `"test"`).

        Example:
            >>> from jaxcrn import datasets
            >>> datasets.iris().split("train").x.shape
            (150, 4)
        """
        if name not in _SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {_SPLITS}.")
        return getattr(self, name)

    @property
    def n_features(self) -> int:
        return int(self.train.x.shape[1])

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


def _data_text(name: str) -> str:
    return resources.files("jaxcrn").joinpath("data", name).read_text("utf-8")


def _standardize(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Standardise columns with the mean and population std (as sklearn does)."""
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    return (x - mean) / std, mean, std


# --------------------------------------------------------------------------- iris

_IRIS_CLASSES = ("Iris-setosa", "Iris-versicolor", "Iris-virginica")
_IRIS_FEATURES = (
    "sepal length (cm)",
    "sepal width (cm)",
    "petal length (cm)",
    "petal width (cm)",
)


def _iris_raw() -> tuple[np.ndarray, np.ndarray]:
    rows = [r for r in csv.reader(io.StringIO(_data_text("iris.csv"))) if r]
    x = np.array([[float(v) for v in r[:4]] for r in rows], dtype=np.float64)
    y = np.array([_IRIS_CLASSES.index(r[4]) for r in rows], dtype=np.int64)
    return x, y


def iris() -> Dataset:
    """The UCI Iris data: 150 flowers, 4 features, 3 classes, standardised.

    This is the UCI repository's `iris.data` (whose rows 34 and 37, 0-based, are both
    `4.9,3.1,1.5,0.1`; scikit-learn's copy differs there), shipped in the package.
    Each feature is standardised with the mean and population standard deviation
    over all 150 rows. As in the paper, train, valid and test are all 150 rows.

    Returns:
        A `Dataset` named `"iris"`; labels 0, 1, 2 = setosa, versicolor, virginica.

    Example:
        >>> from jaxcrn import datasets
        >>> data = datasets.iris()
        >>> data.train.x.shape, data.class_names[0]
        ((150, 4), 'setosa')
    """
    raw, y = _iris_raw()
    x, mean, std = _standardize(raw)
    split = Split(x, y)
    return Dataset(
        name="iris",
        train=split,
        valid=split,
        test=split,
        class_names=("setosa", "versicolor", "virginica"),
        preprocessing={
            "source": "UCI Machine Learning Repository, iris.data (150 rows)",
            "features": list(_IRIS_FEATURES),
            "transform": "x = (raw - mean) / std, statistics over all 150 rows",
            "mean": mean.tolist(),
            "std": std.tolist(),
            "split": "train = valid = test = all 150 rows",
        },
    )


# -------------------------------------------------------------------------- virus

_VIRUS_DIR = "virus-gse73072"
_VIRUS_COHORTS = ("DEE3", "DEE4", "DEE1", "DEE2", "DEE5", "UVA", "DUKE")
_VIRUS_TABLE = "virus_gse73072.csv"
_VIRUS_PERM = "virus_split_permutation.json"
# what the paper's table is made of (marko-vasic/dmp src/crn/virus.py)
_VIRUS_PROBES = tuple(
    f"{n}_at"
    for n in (10000, 10002, 10003, 10004, 10005, 10009, 10013, 10014, 10016, 10019)
)
_VIRUS_LABELS = ("h1n1", "h3n2", "hrv", "rsv")


def _virus_raw_dir(path: str | os.PathLike | None) -> str:
    candidates = []
    if path is not None:
        candidates += [os.fspath(path), os.path.join(os.fspath(path), _VIRUS_DIR)]
    elif os.environ.get("JAXCRN_DATA"):
        env = os.environ["JAXCRN_DATA"]
        candidates += [env, os.path.join(env, _VIRUS_DIR)]
    marker = "icml2020dataset_GSE73072_4labels.csv"
    for c in candidates:
        if os.path.isfile(os.path.join(c, marker)):
            return c
    where = " or ".join(repr(c) for c in candidates) or "(no folder given)"
    raise FileNotFoundError(
        f"the raw GSE73072 files were not found in {where}. Put "
        "icml2020dataset_GSE73072_4labels.csv, icml2020dataset_GSE73072_sample.csv, "
        "the seven icml2020dataset_GSE73072_<COHORT>.csv tables and "
        "dmp_split_permutation.json (from marko-vasic/dmp:data-repo/datasets/virus) "
        f"in one folder, and pass it (or a folder containing {_VIRUS_DIR}/)."
    )


def derive_virus_table(
    path: str | os.PathLike | None = None, *, check: bool = True
) -> dict:
    """Derive the paper's 698-sample, 10-probe virus table from the raw GSE73072 files.

    Follows the procedure of `marko-vasic/dmp:src/crn/virus.py` (see the README of the
    raw-data folder): keep the samples of infected subjects with
    `onset <= hour < offset`, in file column order; label them h1n1/h3n2/hrv/rsv ->
    0..3. No standardisation is applied here.

    Args:
        path: the raw folder, or a folder containing `virus-gse73072/`; defaults to
            `$JAXCRN_DATA`.
        check: compare the derived table with the one shipped in the package (a
            `ValueError` naming the first sample that differs): raw files that
            derive anything else are not the published data. False only to
            regenerate the shipped table (`experiments/derive_virus.py`).

    Returns:
        A dict with `accession` (698 str), `label` (698 int64), `raw` (the 698 x 10
        expression values as the strings in the file), `x` (the same parsed as
        float32), `probes`, `label_names` and `perm` (the split permutation).

    Example:
        >>> from jaxcrn.datasets import derive_virus_table
        >>> t = derive_virus_table("../shared/datasets")  # doctest: +SKIP
        >>> t["x"].shape  # doctest: +SKIP
        (698, 10)
    """
    folder = _virus_raw_dir(path)

    def fail(name, line, what):
        where = os.path.join(folder, name) + (f", line {line}" if line else "")
        return ValueError(
            f"{where}: {what}. The raw files are those of "
            "marko-vasic/dmp:data-repo/datasets/virus; datasets.virus() without a "
            "folder uses the table shipped with jaxcrn."
        )

    def read_csv(name, width=None):
        """`(line, row)` of the non-blank rows; every row as wide as the first."""
        try:
            with open(os.path.join(folder, name), newline="", encoding="utf-8") as f:
                rows = [(i, r) for i, r in enumerate(csv.reader(f), 1) if r]
        except FileNotFoundError:
            raise fail(name, 0, "missing") from None
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            raise fail(name, 0, f"cannot be read ({e})") from None
        if not rows:
            raise fail(name, 0, "empty")
        width = width or len(rows[0][1])
        for line, row in rows:
            if len(row) != width:
                raise fail(name, line, f"{len(row)} cells where the header has {width}")
        return rows

    def number(name, line, text):
        if not DECIMAL_NUMBER.fullmatch(text) or not np.isfinite(float(text)):
            raise fail(name, line, f"{text[:40]!r} is not a finite number")
        return float(text)

    subjects = {}
    for cohort in _VIRUS_COHORTS:
        name = f"icml2020dataset_GSE73072_{cohort}.csv"
        for line, row in read_csv(name, width=6)[1:]:
            subject, _sham, _symptomatic, infected, onset, offset = row
            if infected not in ("0", "1"):
                raise fail(name, line, f"infected is {infected!r}, not 0 or 1")
            key = f"{cohort}#{subject}"
            if key in subjects:
                raise fail(name, line, f"subject {subject} is listed twice")
            if infected == "1":  # the uninfected have no onset (NaN)
                subjects[key] = (
                    True,
                    number(name, line, onset),
                    number(name, line, offset),
                )
            else:
                subjects[key] = (False, 0.0, 0.0)

    active = {}
    name = "icml2020dataset_GSE73072_sample.csv"
    for line, row in read_csv(name)[1:]:
        tokens = row[1].split()
        if len(tokens) == 7:  # "DEE 4" is written with a space
            tokens = [tokens[0], tokens[1] + tokens[2], *tokens[3:]]
        if len(tokens) != 6 or not tokens[3].rstrip(",").isdigit():
            raise fail(
                name,
                line,
                f"title {row[1][:60]!r} is not 'VIRUS COHORT Subject N, Hour H'",
            )
        _virus, cohort, _, subject, _, hour = tokens
        key = f"{cohort}#{int(subject.rstrip(','))}"
        if key not in subjects:
            raise fail(
                name, line, f"sample {row[0]}: subject {key} is in no cohort table"
            )
        if row[0] in active:
            raise fail(name, line, f"sample {row[0]} is listed twice")
        infected, onset, offset = subjects[key]
        active[row[0]] = infected and onset <= number(name, line, hour) < offset

    name = "icml2020dataset_GSE73072_4labels.csv"
    table = read_csv(name)
    if len(table) != 12:
        first = ", ".join(_VIRUS_PROBES[:3])
        raise fail(
            name,
            0,
            f"{len(table)} rows; expected a header, the 10 probes ({first}, ...) and "
            "the labels",
        )
    accessions = table[0][1][1:]
    if len(set(accessions)) != len(accessions):
        raise fail(name, table[0][0], "a sample accession is listed twice")
    probes = [r[0] for _, r in table[1:11]]
    if probes != list(_VIRUS_PROBES):
        raise fail(name, 0, f"the probes are {probes}, expected {list(_VIRUS_PROBES)}")
    labels = table[11][1][1:]
    names = list(_VIRUS_LABELS)
    for i, lab in enumerate(labels):
        if lab not in names:
            raise fail(
                name,
                table[11][0],
                f"the label of {accessions[i]} is {lab!r}, "
                f"not one of {', '.join(names)}",
            )
    keep = [i for i, a in enumerate(accessions) if active.get(a, False)]
    for line, row in table[1:11]:
        for i in keep:
            number(name, line, row[1 + i])
    raw = np.array([[table[1 + j][1][1 + i] for j in range(10)] for i in keep], object)
    name = "dmp_split_permutation.json"
    try:
        with open(os.path.join(folder, name), encoding="utf-8") as f:
            perm = json.load(f)["perm"]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in perm):
            raise TypeError("not a list of whole numbers")
        perm = np.asarray(perm, dtype=np.int64)
    except FileNotFoundError:
        raise fail(name, 0, "missing") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise fail(
            name,
            0,
            f"expected a JSON object with 'perm', a list of whole "
            f"numbers ({type(e).__name__}: {e})",
        ) from None
    derived = {
        "accession": np.array([accessions[i] for i in keep]),
        "label": np.array([names.index(labels[i]) for i in keep], np.int64),
        "raw": raw,
        "x": raw.astype(np.float32),
        "probes": probes,
        "label_names": list(names),
        "perm": perm,
    }
    if not check:
        return derived
    # the paper's table: a raw folder that derives anything else is not its data
    shipped = _virus_shipped()
    for key in ("accession", "label", "raw", "perm"):
        got, want = derived[key], shipped[key]
        if got.shape != want.shape:
            raise ValueError(
                f"the raw files in {folder} give {key} of shape {got.shape}, but the "
                f"paper's table has {want.shape}: they are not the published "
                "GSE73072 files (or one was edited)."
            )
        diff = np.flatnonzero((got != want).reshape(len(got), -1).any(axis=1))
        if diff.size:
            k = int(diff[0])
            raise ValueError(
                f"the raw files in {folder} give another {key} for sample "
                f"{derived['accession'][k]} ({got[k]!r} against {want[k]!r} in the "
                f"paper's table; {diff.size} samples differ): they are not the "
                "published GSE73072 files (or one was edited)."
            )
    return derived


def _virus_shipped() -> dict:
    rows = list(csv.reader(io.StringIO(_data_text(_VIRUS_TABLE))))
    header, rows = rows[0], [r for r in rows[1:] if r]
    perm_info = json.loads(_data_text(_VIRUS_PERM))
    raw = np.array([r[2:] for r in rows], dtype=object)
    return {
        "accession": np.array([r[0] for r in rows]),
        "label": np.array([perm_info["label_names"].index(r[1]) for r in rows]),
        "raw": raw,
        "x": raw.astype(np.float32),
        "probes": header[2:],
        "label_names": perm_info["label_names"],
        "perm": np.asarray(perm_info["perm"], dtype=np.int64),
    }


def virus(path: str | os.PathLike | None = None) -> Dataset:
    """The paper's 4-class virus-infection dataset (GEO GSE73072, 10 probes).

    698 samples of active infection, labelled h1n1, h3n2, hrv, rsv -> 0..3. The raw
    expression values are parsed as float32 (as the reference code did), then each
    probe is standardised over all 698 samples (mean and population std, in float64).
    The split follows the reference code's fixed permutation: 558 train, 34 valid,
    104 test (two samples are in no split).

    Args:
        path: `None` (default) uses the table shipped in the package. A folder with
            the raw files (or one containing `virus-gse73072/`) re-derives it.

    Returns:
        A `Dataset` named `"virus"`; `Split.ids` holds the GEO sample accessions.

    Example:
        >>> from jaxcrn import datasets
        >>> data = datasets.virus()
        >>> len(data.train), len(data.valid), len(data.test)
        (558, 34, 104)
    """
    t = _virus_shipped() if path is None else derive_virus_table(path)
    n = t["x"].shape[0]
    x, mean, std = _standardize(t["x"].astype(np.float64))
    perm = t["perm"]
    if sorted(perm.tolist()) != list(range(n)):
        raise ValueError(f"the split permutation is not a permutation of 0..{n - 1}.")
    n_train, n_valid = int(0.8 * n), int(0.05 * n)
    index = {
        "train": perm[:n_train],
        "valid": perm[n_train + 1 : n_train + 1 + n_valid],
        "test": perm[n_train + n_valid + 2 :],
    }
    splits = {
        s: Split(x[i], t["label"][i], ids=t["accession"][i]) for s, i in index.items()
    }
    return Dataset(
        name="virus",
        **splits,
        class_names=tuple(t["label_names"]),
        preprocessing={
            "source": "GEO GSE73072 as prepared by marko-vasic/dmp (4labels.csv)",
            "features": list(t["probes"]),
            "transform": "x = (float32(raw) - mean) / std, statistics over all "
            f"{n} samples",
            "mean": mean.tolist(),
            "std": std.tolist(),
            "split": f"dmp permutation: train perm[:{n_train}], valid "
            f"perm[{n_train + 1}:{n_train + 1 + n_valid}], test "
            f"perm[{n_train + n_valid + 2}:]",
        },
    )


# ------------------------------------------------------------------------ mnist14

_MNIST_DIR = "mnist"
_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def _find_mnist(path: str | os.PathLike | None) -> dict[str, str]:
    if path is None:
        path = os.environ.get("JAXCRN_DATA") or None  # empty: unset, as for virus
    if path is None:
        raise FileNotFoundError(
            "no MNIST folder given: pass `path` (CLI: --data) or set JAXCRN_DATA to "
            "a folder holding "
            + ", ".join(f"{f}.gz" for f in _MNIST_FILES.values())
            + f" (or to a folder containing {_MNIST_DIR}/ with them). jaxcrn never "
            "downloads; the files are at http://yann.lecun.com/exdb/mnist/."
        )
    path = os.fspath(path)
    best: dict[str, str] = {}
    for folder in (path, os.path.join(path, _MNIST_DIR)):
        found = {}
        for key, name in _MNIST_FILES.items():
            for candidate in (name + ".gz", name):
                if os.path.isfile(os.path.join(folder, candidate)):
                    found[key] = os.path.join(folder, candidate)
                    break
            plain = os.path.join(folder, name)
            if found.get(key, "").endswith(".gz") and os.path.isfile(plain):
                _same_bytes_or_fail(found[key], plain)
        if len(found) == len(_MNIST_FILES):
            return found
        best = found if len(found) > len(best) else best
    missing = [n for k, n in _MNIST_FILES.items() if k not in best]
    where = os.path.dirname(next(iter(best.values()))) if best else None
    raise FileNotFoundError(
        f"MNIST files not found in {path!r} (nor in {os.path.join(path, _MNIST_DIR)!r})"
        + (f": {where!r} has {len(best)} of the four, " if where else ": ")
        + f"missing {', '.join(missing)}. Put the four IDX files "
        + ", ".join(f"{f}.gz" for f in _MNIST_FILES.values())
        + " (gzipped or not) in that folder. jaxcrn never downloads."
    )


def _same_bytes_or_fail(gz: str, plain: str) -> None:
    """Both a file and its .gz: the .gz is read, so they must hold the same bytes."""
    with open(plain, "rb") as f:
        data = f.read()
    try:
        with gzip.open(gz, "rb") as f:
            same = f.read() == data
    except (EOFError, gzip.BadGzipFile, zlib.error):
        return  # _read_idx names the broken .gz
    if not same:
        raise ValueError(
            f"{gz} and {plain} are both there but hold different data; keep only the "
            "right one."
        )


def _read_idx(filename: str, magic: int) -> np.ndarray:
    opener = gzip.open if filename.endswith(".gz") else open
    try:
        with opener(filename, "rb") as f:
            data = f.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise ValueError(
            f"{filename}: not a readable gzip file ({e or type(e).__name__}); the "
            "download is truncated or corrupt: fetch it again (or gunzip it to check)."
        ) from None
    got = int.from_bytes(data[:4], "big")
    if got != magic:
        raise ValueError(f"{filename}: IDX magic number {got}, expected {magic}.")
    n = int.from_bytes(data[4:8], "big")
    if magic == 2051:
        rows, cols = (
            int.from_bytes(data[8:12], "big"),
            int.from_bytes(data[12:16], "big"),
        )
        shape, offset = (n, rows, cols), 16
    else:
        shape, offset = (n,), 8
    size = int(np.prod(shape))
    if len(data) - offset != size:
        raise ValueError(
            f"{filename}: {len(data) - offset} bytes of data, expected {size} for "
            f"shape {shape}; the file is truncated or corrupt."
        )
    return np.frombuffer(data, np.uint8, offset=offset).reshape(shape)


def _block_mean(images: np.ndarray) -> np.ndarray:
    n, h, w = images.shape
    return images.reshape(n, h // 2, 2, w // 2, 2).mean(axis=(2, 4)).reshape(n, -1)


def _center_and_downscale(images: np.ndarray, mean: np.ndarray) -> np.ndarray:
    out = np.empty((images.shape[0], (images.shape[1] // 2) * (images.shape[2] // 2)))
    for start in range(0, images.shape[0], 10_000):  # bounded memory
        chunk = images[start : start + 10_000].astype(np.float64) / 255.0 - mean
        out[start : start + 10_000] = _block_mean(chunk)
    return out


def mnist14(
    path: str | os.PathLike | None = None, *, test_centering: str = "test"
) -> Dataset:
    """MNIST downscaled to 14 x 14, as in the paper: 196 inputs, 10 classes.

    Pixels are divided by 255, centred by subtracting the per-pixel mean (training
    images: the mean over all 60,000 training images; test images: the mean over the
    10,000 test images, as the reference code did, or the training mean with
    `test_centering="train"`), then averaged over 2 x 2 blocks and flattened
    row-major. Split: the first 50,000 training images, the last 10,000, and the
    10,000 test images.

    Args:
        path: the folder with the four IDX files (`.gz` or not), or a folder
            containing `mnist/`; defaults to `$JAXCRN_DATA`. Never downloads.
        test_centering: `"test"` (default, as the paper) or `"train"`.

    Returns:
        A `Dataset` named `"mnist14"`.

    Example:
        >>> from jaxcrn import datasets
        >>> data = datasets.mnist14("../shared/datasets")  # doctest: +SKIP
        >>> data.train.x.shape, data.test.x.shape  # doctest: +SKIP
        ((50000, 196), (10000, 196))
    """
    if test_centering not in ("test", "train"):
        raise ValueError(
            f"test_centering must be 'test' or 'train', got {test_centering!r}."
        )
    files = _find_mnist(path)
    train_images = _read_idx(files["train_images"], 2051)
    train_labels = _read_idx(files["train_labels"], 2049)
    test_images = _read_idx(files["test_images"], 2051)
    test_labels = _read_idx(files["test_labels"], 2049)
    for key, a, shape in (
        ("train_images", train_images, (60_000, 28, 28)),
        ("test_images", test_images, (10_000, 28, 28)),
        ("train_labels", train_labels, (60_000,)),
        ("test_labels", test_labels, (10_000,)),
    ):
        if a.shape != shape:
            raise ValueError(
                f"{files[key]}: holds an array of shape {a.shape}, expected {shape} "
                "(the official MNIST file)."
            )
        if key.endswith("labels") and a.max(initial=0) > 9:
            i = int(np.argmax(a > 9))
            raise ValueError(
                f"{files[key]}: label {i} is {int(a[i])}; MNIST labels are 0 to 9."
            )
    mean_train = train_images.sum(axis=0, dtype=np.int64) / (255.0 * 60_000)
    mean_test = test_images.sum(axis=0, dtype=np.int64) / (255.0 * 10_000)
    x_train = _center_and_downscale(train_images, mean_train)
    mean_for_test = mean_test if test_centering == "test" else mean_train
    x_test = _center_and_downscale(test_images, mean_for_test)
    labels = train_labels.astype(np.int64)
    return Dataset(
        name="mnist14",
        train=Split(x_train[:50_000], labels[:50_000]),
        valid=Split(x_train[50_000:], labels[50_000:]),
        test=Split(x_test, test_labels.astype(np.int64)),
        class_names=tuple(str(d) for d in range(10)),
        preprocessing={
            "source": "MNIST IDX files (LeCun, Cortes, Burges)",
            "transform": "x = block_mean_2x2(pixels / 255 - mean), 28x28 -> 14x14, "
            "flattened row-major",
            "train_centering": "per-pixel mean over the 60000 training images",
            "test_centering": f"per-pixel mean over the {test_centering} images",
            "mean_train_14": _block_mean(mean_train[None])[0].tolist(),
            "mean_test_14": _block_mean(mean_for_test[None])[0].tolist(),
            "split": "train: training images 0..49999, valid: 50000..59999, "
            "test: the 10000 test images",
        },
    )


# --------------------------------------------------------------------------- load

_LOADERS = {"iris": iris, "virus": virus, "mnist14": mnist14}


def load(name: str, path: str | os.PathLike | None = None) -> Dataset:
    """Load a dataset by name: `"iris"`, `"virus"` or `"mnist14"`.

    Args:
        name: the dataset.
        path: a data folder; only used by `"virus"` (to re-derive from raw files) and
            `"mnist14"` (where it or `$JAXCRN_DATA` is required).

    Example:
        >>> from jaxcrn import datasets
        >>> datasets.load("virus").n_classes
        4
    """
    if name not in _LOADERS:
        raise ValueError(
            f"unknown dataset {name!r}; expected one of {', '.join(_LOADERS)}."
        )
    if name == "iris":
        return iris()
    return _LOADERS[name](path)
