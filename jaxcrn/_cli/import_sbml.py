"""`jaxcrn import`: an SBML model (mass action) to a .crn file."""

import os
import sys

from ._common import CLIError, claim_outputs, command, write_files


def add(sub) -> None:
    p = command(
        sub,
        "import",
        help="import an SBML model (mass action) as a .crn file",
        description="""
            Read a mass-action SBML model (any level and version) and write it in
            the .crn format: parameters and compartment sizes substituted,
            reversible laws split into two reactions.

            A species' value in the CRN is its concentration (its amount when the
            SBML species has hasOnlySubstanceUnits); boundary and constant species
            become catalysts, so they keep their initial values. Rules, events,
            function definitions, initial assignments, delays and kinetic laws other
            than mass action are errors (exit 2) naming the SBML element. Needs
            python-libsbml: pip install 'jaxcrn[sbml]'.
        """,
        examples="""
            jaxcrn import model.xml -o net.crn        # write the CRN to net.crn
            jaxcrn import model.xml                   # print the CRN on stdout
            jaxcrn import model.xml -o net.crn --force
        """,
    )
    p.add_argument("sbml", metavar="MODEL.xml", help="the SBML file")
    p.add_argument(
        "-o",
        "--output",
        metavar="NET.crn",
        help="where to write the CRN (default: print it on stdout)",
    )
    p.add_argument(
        "--force", action="store_true", help="overwrite NET.crn if it exists"
    )
    p.set_defaults(func=run)


def run(args) -> int:
    from .._crn import format_crn
    from .._sbml import SBMLImportError, read_sbml

    claim_outputs(args.force, args.output, reads=[args.sbml])
    try:
        model = read_sbml(args.sbml)
    except ImportError as e:
        raise CLIError(str(e)) from None
    except OSError as e:  # no such file, a directory, a name too long, ...
        raise CLIError(str(e)) from None
    except SBMLImportError as e:
        raise CLIError("\n".join(e.lines())) from None
    crn = model.crn
    if not crn.species:  # every other command refuses such a .crn file
        raise CLIError(f"{args.sbml}: the model has no species: nothing to simulate.")
    notes = []
    if model.amount_species:
        notes.append(
            "values are concentrations, except amounts for "
            + ", ".join(sorted(model.amount_species))
        )
    if model.constant_species:
        notes.append(
            "kept constant (catalysts): " + ", ".join(sorted(model.constant_species))
        )
    summary = (
        f"{model.name}: {len(crn.species)} species, {len(crn.reactions)} reaction"
        + ("" if len(crn.reactions) == 1 else "s")
        + "".join(f"; {n}" for n in notes)
    )
    # the file says what the terminal does: which values are amounts, which held
    text = f"# imported from {os.path.basename(args.sbml)}: {summary}\n" + format_crn(
        crn
    )
    if args.output is None:
        sys.stdout.write(text)
        print(f"# {summary}", file=sys.stderr)
        return 0
    write_files({args.output: text}, args.force)
    print(f"wrote {os.fspath(args.output)} ({summary})")
    return 0
