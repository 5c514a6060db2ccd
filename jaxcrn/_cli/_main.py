"""`jaxcrn COMMAND ...`: the parser and `main`. JAX is imported only by the commands."""

import json
import os
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
from ._common import CLIError, Parser, UsageError


# In the order `jaxcrn --help` lists them; each module has `add(sub)`.
_COMMANDS = (simulate, compile, verify, export, import_sbml, demo, reproduce, train)

_EPILOG = """\
examples:
  jaxcrn demo                                  # train IRIS 4-8-3, compile, check
  jaxcrn simulate examples/reversible.crn      # final concentrations
  jaxcrn compile model.npz -o net.crn --reduce # a trained network to chemistry

`jaxcrn COMMAND --help` describes each command, its options and their defaults.
Exit status: 0 ok, 1 a simulation or check failed, 2 bad input (one line per
problem on stderr, naming the file and line).
Compiled programs are kept in ~/.cache/jaxcrn/xla, so the next command on the
same network starts without compiling: JAXCRN_CACHE=DIR keeps them in DIR,
JAXCRN_CACHE=off not at all."""


def build_parser() -> Parser:
    import argparse

    parser = Parser(
        prog="jaxcrn",
        description=(
            "Compile binary-weight ReLU networks to rate-independent chemical\n"
            "reaction networks and simulate them with JAX."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in _COMMANDS:
        command.add(sub)
    return parser


def _json_error(messages: list[str], status: int) -> None:
    print(json.dumps({"error": {"exit_status": status, "messages": messages}}))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 failure, 2 bad input).

    Example:
        >>> main(["simulate", "no/such/file.crn"])
        2
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    json_stdout = bool(argv) and argv[0] == "simulate" and "--json" in argv
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as e:
        message = " ".join(e.message.split())
        if len(message) > 300:
            message = message[:297] + "..."
        print(f"{e.prog}: error: {message}", file=sys.stderr)
        print(f"{e.prog}: see `{e.prog} --help` for the options", file=sys.stderr)
        if json_stdout:
            _json_error([message], 2)
        return 2
    except SystemExit as e:  # --help
        return e.code if isinstance(e.code, int) else 0
    json_stdout = getattr(args, "json", None) is True
    import warnings

    def one_line(message, category, *rest, **kwargs):  # not the source line too
        return f"jaxcrn {args.command}: warning: {message}\n"

    formatwarning, warnings.formatwarning = warnings.formatwarning, one_line
    try:
        return int(args.func(args) or 0)
    except CLIError as e:
        lines = str(e).splitlines()
        for line in lines:
            print(f"jaxcrn {args.command}: error: {line}", file=sys.stderr)
        if json_stdout:
            _json_error(lines, 2)
        return 2
    except KeyboardInterrupt:
        print(f"jaxcrn {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug: one line, not a traceback (JAXCRN_TRACEBACK=1)
        if os.environ.get("JAXCRN_TRACEBACK"):
            raise
        text = " ".join(str(e).split())[:300]
        print(
            f"jaxcrn {args.command}: internal error: {type(e).__name__}: {text}",
            file=sys.stderr,
        )
        print(
            "this is a bug in jaxcrn: please report it with the command line "
            "(JAXCRN_TRACEBACK=1 shows the traceback)",
            file=sys.stderr,
        )
        if json_stdout:
            _json_error([f"internal error: {type(e).__name__}: {text}"], 1)
        return 1
    finally:
        warnings.formatwarning = formatwarning


def entry() -> None:
    """The `jaxcrn` console script and `python -m jaxcrn`: `main()` as the exit
    status. After an interrupt (status 130) the process ends at once, without the
    interpreter's teardown: every finished chunk is already on disk (each file is
    complete before it is listed), and tearing down XLA while its thread pools
    wind down aborted the process now and then (SIGABRT instead of 130)."""
    code = main()
    if code == 130:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    raise SystemExit(code)
