"""`jaxcrn COMMAND ...`: the parser and `main`. JAX is imported only by the commands."""

import argparse
import sys
from collections.abc import Sequence

from . import (
    compile,
    demo,
    export,
    import_sbml,
    reproduce,
    simulate,
    train,
    verify,
)
from ._common import CLIError


# In the order `jaxcrn --help` lists them; each module has `add(sub)`.
_COMMANDS = (simulate, compile, verify, export, import_sbml, demo, reproduce, train)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxcrn",
        description=(
            "Compile binary-weight ReLU networks to rate-independent chemical reaction "
            "networks and simulate them with JAX."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in _COMMANDS:
        command.add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 failure, 2 bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CLIError as e:
        for line in str(e).splitlines():
            print(f"jaxcrn {args.command}: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
