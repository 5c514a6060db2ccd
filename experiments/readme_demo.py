"""Rewrite the README's `jaxcrn demo --no-train` block with what the command prints.

    python experiments/readme_demo.py      # from the repository root

The demo runs in a temporary folder (so it writes demo/iris_traces.png there);
tests/test_readme.py checks the block against a fresh run, wall times aside.
"""

import contextlib
import io
import os
import re
import sys
import tempfile


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from jaxcrn._cli import main  # noqa: E402


def demo_output() -> str:
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as d:
        os.chdir(d)
        try:
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                code = main(["demo", "--no-train", "--quiet"])
        finally:
            os.chdir(here)
    if code != 0:
        raise SystemExit(f"jaxcrn demo exited with status {code}")
    return buf.getvalue()


if __name__ == "__main__":
    path = os.path.join(ROOT, "README.md")
    with open(path, encoding="utf-8") as f:
        readme = f.read()
    start = "$ jaxcrn demo --no-train\n"
    new, n = re.subn(
        re.escape(start) + r".*?```",
        lambda m: start + demo_output() + "```",
        readme,
        count=1,
        flags=re.S,
    )
    if n != 1:
        raise SystemExit("README.md has no block starting with " + start.strip())
    with open(path, "w", encoding="utf-8") as f:
        f.write(new)
    print(f"updated {path}")
