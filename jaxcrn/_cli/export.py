"""`jaxcrn export`: a .crn file to SBML."""

from ._common import (
    claim_outputs,
    command,
    load_crn_or_fail,
    sbml_or_fail,
    write_files,
)


def add(sub) -> None:
    p = command(
        sub,
        "export",
        help="export a .crn file to SBML",
        description="""
            Write a CRN as SBML Level 3 Version 2: mass-action kinetics, one
            compartment of volume 1, every rate constant a global parameter, every
            species' initial concentration its init value (0 without one). Inputs and
            outputs have no SBML equivalent: set the input species' concentrations in
            the other simulator, and read outputs as differences of species.
        """,
        examples="""
            jaxcrn export examples/reversible.crn --sbml reversible.xml
            jaxcrn export net.crn --sbml net.xml --force   # replace net.xml
        """,
    )
    p.add_argument("crn", help="the .crn file")
    p.add_argument(
        "--sbml", required=True, metavar="OUT.xml", help="the SBML file to write"
    )
    p.add_argument(
        "--force", action="store_true", help="overwrite OUT.xml if it exists"
    )
    p.set_defaults(func=run)


def run(args) -> int:
    crn = load_crn_or_fail(args.crn)
    claim_outputs(args.force, args.sbml, reads=[args.crn])
    write_files({args.sbml: sbml_or_fail(crn, args.crn)}, args.force)
    print(
        f"wrote {args.sbml} ({len(crn.species)} species, {len(crn.reactions)} "
        "reactions)"
    )
    return 0
