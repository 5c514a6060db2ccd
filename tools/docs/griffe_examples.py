"""Griffe extension for the documentation build: jaxcrn's docstrings head their
doctests with `Example:` (the house style); Griffe's Google parser reads only
`Examples:` as an examples section (and renders the doctests as code)."""

import re

import griffe


_EXAMPLE = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    def on_instance(self, *, obj, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _EXAMPLE.sub(r"\1Examples:", obj.docstring.value)
