"""The `jaxcrn` command line: `jaxcrn COMMAND ...`; `jaxcrn --help` lists commands."""

import argparse
import sys
from collections.abc import Sequence


class CLIError(Exception):
    """A user-facing error: printed as one line on stderr, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxcrn",
        description=(
            "Compile binary-weight ReLU networks to rate-independent chemical reaction "
            "networks and simulate them with JAX."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # Each command registers itself here: `_add_<name>(sub)` sets `func`.
    for add in _COMMANDS:
        add(sub)
    return parser


_COMMANDS: list = []


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
