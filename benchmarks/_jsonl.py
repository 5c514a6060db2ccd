"""Shared by the benchmark scripts: print a record as one JSON line and append it
to an open file (flushed, so a killed run keeps what it measured)."""

import json


def emit(rec: dict, out=None) -> None:
    line = json.dumps(rec)
    print(line, flush=True)
    if out is not None:
        out.write(line + "\n")
        out.flush()
