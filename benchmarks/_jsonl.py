"""Shared by the benchmark scripts: print a record as one JSON line and append it
to an open file (flushed, so a killed run keeps what it measured)."""

import json


def emit(rec: dict, out=None) -> None:
    line = json.dumps(rec)
    print(line, flush=True)
    if out is not None:
        out.write(line + "\n")
        out.flush()


def read(paths, benchmark: str | None = None) -> list[dict]:
    """The records of JSON-lines files, in order (blank lines skipped); only those
    of `benchmark` when given. A line that is not JSON ends the script, naming the
    file and line."""
    recs = []
    for path in paths:
        with open(path) as f:
            for i, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    recs.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise SystemExit(f"{path}:{i}: not a JSON line ({e.msg})") from None
    if benchmark is not None:
        recs = [r for r in recs if r.get("benchmark") == benchmark]
    return recs
