"""The one progress bar of jaxcrn (simulation and training), on `tqdm.auto`.

A widget in Jupyter, a bar on a terminal, nothing when stderr is neither (a log
file, CI) or when not asked for. Library functions take `progress=False` by
default (as diffrax does); the command line turns it on.

For engine authors: `Progress.update(n)` is thread-safe, so a worker thread (or a
`jax.debug.callback` from inside a compiled loop) may report finished samples
while the main thread waits on a long chunk; between updates a background thread
redraws the bar every `refresh` seconds, so the elapsed time keeps moving.
"""

import sys
import threading


def _in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (as tqdm.auto decides)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # pragma: no cover - an unusual IPython
        return False
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def visible() -> bool:
    """Whether a progress bar can be seen: in Jupyter, or stderr is a terminal."""
    isatty = getattr(sys.stderr, "isatty", None)
    return _in_notebook() or bool(isatty and isatty())


class Progress:
    """`with Progress(total, "simulating", enabled=True) as bar: bar.update(n)`.

    Arguments:
        total: the number of units (samples, epochs) to expect.
        label: the text before the bar.
        enabled: draw anything at all (still only where `visible()`).
        unit: the unit's name (`"sample"`, `"epoch"`).
        refresh: seconds between redraws while no update comes (0: never).

    `update(n, postfix)` adds `n` done units and optionally replaces the text after
    the bar; it is thread-safe. `done` counts the units reported, drawn or not.

    Example:
        >>> with Progress(3, "work", enabled=False) as bar:
        ...     for _ in range(3):
        ...         bar.update(1)
        >>> bar.done
        3
    """

    def __init__(
        self,
        total: int,
        label: str = "",
        *,
        enabled: bool = False,
        unit: str = "it",
        refresh: float = 2.0,
    ):
        self.total = max(int(total), 0)
        self.done = 0
        self._lock = threading.Lock()
        self._bar = None
        self._stop = threading.Event()
        self._thread = None
        if enabled and visible():
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=self.total,
                desc=label,
                unit=unit,
                dynamic_ncols=True,
                mininterval=0.2,
                file=sys.stderr,
            )
            if refresh > 0:
                self._thread = threading.Thread(
                    target=self._refresh, args=(refresh,), daemon=True
                )
                self._thread.start()

    @property
    def enabled(self) -> bool:
        """Whether a bar is drawn."""
        return self._bar is not None

    def _refresh(self, every: float) -> None:
        while not self._stop.wait(every):
            with self._lock:
                if self._bar is not None:
                    self._bar.refresh()

    def update(self, n: int = 1, postfix: str | None = None) -> None:
        """Report `n` more units done (thread-safe)."""
        with self._lock:
            self.done += n
            if self._bar is not None:
                if postfix is not None:
                    self._bar.set_postfix_str(postfix, refresh=False)
                self._bar.update(n)

    def set_postfix(self, postfix: str) -> None:
        """Replace the text after the bar (e.g. the loss), thread-safe."""
        with self._lock:
            if self._bar is not None:
                self._bar.set_postfix_str(postfix)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            if self._bar is not None:
                self._bar.close()
                self._bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
