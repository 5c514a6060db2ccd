"""`jaxcrn compile`: a trained network (.npz) to a CRN (.crn)."""

import argparse

from ._common import (
    CLIError,
    _check_output_path,
    _load_model_or_fail,
    format_table,
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
    p = sub.add_parser(
        "compile",
        help="compile a trained network (.npz) to a CRN (.crn), Algorithm 1 (+2)",
        description=(
            "Compile a binary/ternary ReLU network to a rate-independent CRN "
            "(Algorithm 1 of Vasic et al. 2020) and, with --reduce, remove its "
            "unimolecular reactions (Algorithm 2). Prints the reaction counts."
        ),
    )
    p.add_argument("model", help="model .npz (W0, b0, W1, b1, ...)")
    p.add_argument("-o", "--output", required=True, metavar="NET.crn")
    p.add_argument("--reduce", action="store_true", help="apply Algorithm 2")
    p.add_argument(
        "--keep-inputs",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with --reduce: keep the input layer's reactions (default)",
    )
    p.add_argument("--sbml", metavar="OUT.xml", help="also write the CRN as SBML")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.set_defaults(func=run)


def run(args) -> int:
    from .._crn import save_crn
    from .._nn2crn import count_reactions, is_noncompetitive, nn_to_crn, reduce_crn
    from .._sbml import save_sbml

    _check_output_path(args.output, args.force)
    _check_output_path(args.sbml, args.force)
    model = _load_model_or_fail(args.model)
    full = nn_to_crn(model)
    crns = {"full": full}
    if args.reduce:
        try:
            crns["reduced"] = reduce_crn(full, keep_inputs=args.keep_inputs)
        except ValueError as e:
            raise CLIError(str(e)) from None
    out = crns["reduced" if args.reduce else "full"]
    save_crn(out, args.output, overwrite=args.force)
    if args.sbml:
        save_sbml(out, args.sbml, overwrite=args.force)
    counts = {k: count_reactions(c).as_dict() for k, c in crns.items()}
    print(format_table(["", *counts], _counts_rows(counts)))
    check = is_noncompetitive(out)
    print(
        "\nnon-competitive: "
        + ("yes (rate-independent)" if check else f"NO: {check.reason}")
    )
    print(f"wrote {args.output}" + (f" and {args.sbml}" if args.sbml else ""))
    return 0
