"""`jaxcrn compile`: a trained network (.npz) to a CRN (.crn)."""

import argparse
import dataclasses

from ._common import (
    CLIError,
    claim_outputs,
    command,
    format_table,
    load_model_or_fail,
    write_files,
)


def _counts_rows(counts: dict) -> list[list]:
    keys = [
        ("species", "species"),
        ("reactions", "reactions (all)"),
        ("bimolecular", "bimolecular"),
        ("unimolecular", "unimolecular"),
        ("max_product_stoichiometry", "largest product stoichiometry"),
    ]
    return [[label] + [counts[c][k] for c in counts] for k, label in keys]


def add(sub) -> None:
    p = command(
        sub,
        "compile",
        help="compile a trained network (.npz) to a CRN (.crn), Algorithm 1 (+2)",
        description="""
            Compile a binary/ternary ReLU network to a rate-independent CRN
            (Algorithm 1 of Vasic et al. 2020) and, with --reduce, remove its
            unimolecular reactions (Algorithm 2). Prints the reaction counts and the
            non-competitive check.

            When the model file records its input preprocessing (x = (raw - mean) /
            std, as `jaxcrn train` stores it for iris and virus), the .crn file
            records it on its input statements ([mean=..., std=...]), and `jaxcrn
            simulate --inputs raw.csv --preprocess` applies it.
        """,
        examples="""
            jaxcrn compile experiments/models/iris.npz -o iris.crn
            jaxcrn compile experiments/models/iris.npz -o iris_reduced.crn --reduce
            jaxcrn compile model.npz -o net.crn --sbml net.xml --force
        """,
    )
    p.add_argument("model", help="model .npz (W0, b0, W1, b1, ... and metadata)")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="NET.crn",
        help="the .crn file to write",
    )
    p.add_argument(
        "--reduce",
        action="store_true",
        help="apply Algorithm 2 (default: the full CRN of Algorithm 1)",
    )
    p.add_argument(
        "--keep-inputs",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with --reduce: keep the input layer's reactions (default: keep)",
    )
    p.add_argument(
        "--sbml",
        metavar="OUT.xml",
        help="also write the CRN as SBML (default: no SBML)",
    )
    p.add_argument(
        "--force", action="store_true", help="overwrite -o and --sbml files that exist"
    )
    p.set_defaults(func=run)


def with_preprocessing(crn, meta: dict):
    """`crn` with the model's `(raw - mean) / std` recorded on its inputs (when the
    metadata has one mean and one positive std per input), and whether it was."""
    pre = meta.get("preprocessing")
    if not isinstance(pre, dict):
        return crn, False
    mean, std = pre.get("mean"), pre.get("std")
    n = len(crn.inputs)
    if not (isinstance(mean, list) and isinstance(std, list)):
        return crn, False
    if len(mean) != n or len(std) != n:
        return crn, False
    try:
        inputs = tuple(
            dataclasses.replace(s, mean=m, std=d)
            for s, m, d in zip(crn.inputs, mean, std, strict=True)
        )
    except (TypeError, ValueError):
        return crn, False
    return dataclasses.replace(crn, inputs=inputs), True


def run(args) -> int:
    from .._crn import format_crn
    from .._nn import load_metadata
    from .._nn2crn import count_reactions, is_noncompetitive, nn_to_crn, reduce_crn
    from .._sbml import to_sbml

    claim_outputs(args.force, args.output, args.sbml)
    model = load_model_or_fail(args.model)
    meta = load_metadata(args.model)
    full = nn_to_crn(model)
    crns = {"full": full}
    if args.reduce:
        try:
            crns["reduced"] = reduce_crn(full, keep_inputs=args.keep_inputs)
        except ValueError as e:
            raise CLIError(str(e)) from None
    out, recorded = with_preprocessing(crns["reduced" if args.reduce else "full"], meta)
    files = {args.output: format_crn(out)}
    if args.sbml:
        files[args.sbml] = to_sbml(out)
    write_files(files, args.force)
    counts = {k: count_reactions(c).as_dict() for k, c in crns.items()}
    print(format_table(["", *counts], _counts_rows(counts)))
    check = is_noncompetitive(out)
    print(
        "\nnon-competitive: "
        + ("yes (rate-independent)" if check else f"NO: {check.reason}")
    )
    if recorded:
        print(
            "inputs: the model's preprocessing x = (raw - mean) / std is recorded in "
            f"{args.output}; `jaxcrn simulate {args.output} --inputs raw.csv "
            "--preprocess` applies it"
        )
    print(f"wrote {args.output}" + (f" and {args.sbml}" if args.sbml else ""))
    return 0
