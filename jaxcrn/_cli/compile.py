"""`jaxcrn compile`: a trained network (.npz) to a CRN (.crn)."""

import argparse
import dataclasses
import math

from ._common import (
    CLIError,
    claim_outputs,
    command,
    format_table,
    load_model_or_fail,
    sbml_or_fail,
    setup_jax,
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


def with_preprocessing(crn, meta: dict, path: str):
    """`crn` with the model's `(raw - mean) / std` recorded on its inputs, and
    whether the model has one; a malformed record (not one finite mean and one
    positive finite std per input) is a CLIError naming `path`: dropping it would
    leave raw inputs silently misclassified."""
    pre = meta.get("preprocessing")
    if pre is None:
        return crn, False
    n = len(crn.inputs)

    def bad(what):
        return CLIError(
            f"{path}: metadata 'preprocessing' {what}; it must hold 'mean' and 'std', "
            f"lists of {n} numbers (one per input, every std > 0). Fix or remove it."
        )

    if not isinstance(pre, dict):
        raise bad(f"is a {type(pre).__name__}, not a mapping")
    values = {}
    for key in ("mean", "std"):
        v = pre.get(key)
        if not isinstance(v, list):
            raise bad(f"has no list '{key}'")
        if len(v) != n:
            raise bad(f"'{key}' has {len(v)} values for {n} inputs")
        for i, x in enumerate(v):
            number = isinstance(x, int | float) and not isinstance(x, bool)
            if not number or not math.isfinite(x) or (key == "std" and x <= 0):
                raise bad(f"'{key}'[{i}] is {x!r}")
        values[key] = v
    inputs = tuple(
        dataclasses.replace(s, mean=float(m), std=float(d))
        for s, m, d in zip(crn.inputs, values["mean"], values["std"], strict=True)
    )
    return dataclasses.replace(crn, inputs=inputs), True


def run(args) -> int:
    from .._crn import format_crn
    from .._nn import load_metadata
    from .._nn2crn import count_reactions, is_noncompetitive, nn_to_crn, reduce_crn

    claim_outputs(args.force, args.output, args.sbml, reads=[args.model])
    setup_jax(args)  # float64: the biases become the CRN's init values exactly
    model = load_model_or_fail(args.model)
    meta = load_metadata(args.model)
    full = nn_to_crn(model)
    crns = {"full": full}
    if args.reduce:
        try:
            crns["reduced"] = reduce_crn(full, keep_inputs=args.keep_inputs)
        except ValueError as e:
            raise CLIError(str(e)) from None
    out, recorded = with_preprocessing(
        crns["reduced" if args.reduce else "full"], meta, args.model
    )
    files = {args.output: format_crn(out)}
    if args.sbml:
        files[args.sbml] = sbml_or_fail(out, f"the CRN compiled from {args.model}")
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
