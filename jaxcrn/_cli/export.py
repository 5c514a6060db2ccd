"""`jaxcrn export`: a .crn file to SBML."""

from ._common import (
    _check_output_path,
    _load_crn_or_fail,
)


def add(sub) -> None:
    p = sub.add_parser(
        "export",
        help="export a .crn file to SBML",
        description="Write a CRN as SBML Level 3 (mass action, one compartment).",
    )
    p.add_argument("crn", help="the .crn file")
    p.add_argument("--sbml", required=True, metavar="OUT.xml")
    p.add_argument("--force", action="store_true", help="overwrite OUT.xml")
    p.set_defaults(func=run)


def run(args) -> int:
    from .._sbml import save_sbml

    crn = _load_crn_or_fail(args.crn)
    _check_output_path(args.sbml, args.force)
    save_sbml(crn, args.sbml, overwrite=args.force)
    print(
        f"wrote {args.sbml} ({len(crn.species)} species, {len(crn.reactions)} "
        "reactions)"
    )
    return 0
