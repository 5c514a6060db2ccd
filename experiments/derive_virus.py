"""Regenerate the virus table shipped in `jaxcrn/data/` from the raw GSE73072 files.

Usage:
    python experiments/derive_virus.py [RAW_FOLDER]   # default: $JAXCRN_DATA

RAW_FOLDER holds the files of `marko-vasic/dmp:data-repo/datasets/virus/` plus
`dmp_split_permutation.json` (or contains them in `virus-gse73072/`). Writes
`jaxcrn/data/virus_gse73072.csv` (accession, label, 10 probes; the expression values
exactly as written in the raw file) and `jaxcrn/data/virus_split_permutation.json`,
then prints the statistics to compare with the raw folder's README.
"""

import csv
import json
import os
import sys

import numpy as np

from jaxcrn.datasets import derive_virus_table, virus


def main(argv: list[str]) -> int:
    raw = argv[0] if argv else os.environ.get("JAXCRN_DATA")
    if raw is None:
        print(__doc__, file=sys.stderr)
        return 2
    t = derive_virus_table(
        raw, check=False
    )  # this writes the table it is checked against
    out = os.path.join(os.path.dirname(__file__), "..", "jaxcrn", "data")
    with open(os.path.join(out, "virus_gse73072.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["accession", "label", *t["probes"]])
        for acc, lab, row in zip(t["accession"], t["label"], t["raw"]):
            w.writerow([acc, t["label_names"][lab], *row])
    with open(os.path.join(out, "virus_split_permutation.json"), "w") as f:
        json.dump(
            {
                "description": (
                    "virus_dataset_shuffled_indices of marko-vasic/dmp "
                    "src/crn/constants.py: a permutation of the 698 rows of "
                    "virus_gse73072.csv. train = perm[0:558], valid = perm[559:593], "
                    "test = perm[594:698]; perm[558] and perm[593] are in no split."
                ),
                "label_names": t["label_names"],
                "perm": t["perm"].tolist(),
            },
            f,
        )
        f.write("\n")
    data = virus()
    x = t["x"].astype(np.float64)
    print("samples:", x.shape, "class counts:", np.bincount(t["label"]).tolist())
    print("means:", np.array2string(x.mean(0), precision=8))
    print("stds: ", np.array2string(x.std(0), precision=8))
    for s in ("train", "valid", "test"):
        print(s, len(data.split(s)), np.bincount(data.split(s).y, minlength=4).tolist())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
