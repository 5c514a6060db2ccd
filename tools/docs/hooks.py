"""MkDocs hook: `<!-- jaxcrn-help: COMMAND -->` in a page becomes the output of
`jaxcrn COMMAND --help`, so the command-line page is produced by the real parser
(`<!-- jaxcrn-help: -->` gives `jaxcrn --help`)."""

import contextlib
import io
import os
import re


_MARK = re.compile(r"<!-- jaxcrn-help: *([a-z]*) *-->")


def _help(command: str) -> str:
    from jaxcrn._cli._main import build_parser

    os.environ["COLUMNS"] = "88"
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        build_parser().parse_args([command, "--help"] if command else ["--help"])
    return out.getvalue()


def on_page_markdown(markdown, **kwargs):
    def replace(m):
        cmd = m.group(1)
        return f"```console\n$ jaxcrn {cmd + ' ' if cmd else ''}--help\n{_help(cmd)}```"

    return _MARK.sub(replace, markdown)
