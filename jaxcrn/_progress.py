"""A dependency-free progress line for long loops (stderr, TTY only)."""

import sys
import time


class Progress:
    """`with Progress(total, "simulating") as p: ... p.update(n)`.

    Draws `label  [#####.....]  k/total  elapsed  eta` on stderr when stderr is a
    terminal and `enabled` is true; otherwise prints nothing.

    Example:
        >>> with Progress(3, "work", enabled=False) as p:
        ...     for _ in range(3):
        ...         p.update(1)
        >>> p.done
        3
    """

    def __init__(self, total: int, label: str = "", *, enabled: bool = True):
        self.total = max(int(total), 0)
        self.label = label
        self.done = 0
        self.enabled = enabled and sys.stderr.isatty()
        self.start = time.perf_counter()
        self.extra = ""

    def __enter__(self) -> "Progress":
        self._draw()
        return self

    def update(self, n: int = 1, extra: str = "") -> None:
        self.done += n
        if extra:
            self.extra = extra
        self._draw()

    def _draw(self, final: bool = False) -> None:
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.start
        frac = self.done / self.total if self.total else 1.0
        width = 24
        bar = "#" * int(frac * width) + "." * (width - int(frac * width))
        eta = ""
        if 0 < self.done < self.total:
            eta = f" eta {elapsed / self.done * (self.total - self.done):.0f}s"
        line = (
            f"\r{self.label} [{bar}] {self.done}/{self.total} {elapsed:.1f}s{eta}"
            f" {self.extra}"
        )
        sys.stderr.write(line[:160].ljust(80))
        if final:
            sys.stderr.write("\n")
        sys.stderr.flush()

    def __exit__(self, *exc) -> None:
        self._draw(final=True)
