"""The `jaxcrn` command line: `jaxcrn COMMAND ...`; `jaxcrn --help` lists commands.

One module per command (`add(sub)` registers its parser, `run(args)` runs it);
`_common` holds what they share. Nothing here imports JAX: a command imports it when
it runs, so `jaxcrn --help` answers at once.
"""

from ._common import CLIError as CLIError, format_table as format_table
from ._main import build_parser as build_parser, entry as entry, main as main
