"""Verification: does the compiled CRN compute what the network computes?"""

import dataclasses
import os
import time

import numpy as np

from ._batch import simulate_batch
from ._crn import CRN
from ._network import compile_crn
from ._nn2crn import network_params
from ._simulate import Status, convergence_times


__all__ = ["RateSample", "VerifyReport", "verify"]


@dataclasses.dataclass(frozen=True)
class RateSample:
    """The CRN re-simulated with random rate constants (see `verify`)."""

    seed: int
    rates_min: float
    rates_max: float
    t1: float
    agreement: int  # argmax agreement with the network, out of n
    max_abs_error: float  # largest |output - network output| over samples, outputs
    max_change: float  # largest |output - output at rates 1| over samples, outputs
    ok: int  # samples whose solve succeeded


@dataclasses.dataclass(frozen=True)
class VerifyReport:
    """Per-sample comparison of a CRN with the network's forward pass.

    Attributes:
        n: number of inputs.
        nn_outputs, crn_outputs: shape `(n, outputs)`.
        abs_error: per sample, `max |CRN - NN|` over the outputs.
        agree: per sample, whether the argmaxes agree.
        converged: per sample, steady at `t1` (see `SimulationResult.converged`).
        status: per sample `Status` codes.
        t_eps: per sample, the time from which every output stays within `eps` of
            its final value (saved-grid resolution `t1/200`, interpolated).
        t_argmax: per sample, the time from which the argmax stays final.
        t1, wall_s: simulated time and wall-clock seconds.
        rate_samples: results under random rate constants.
    """

    n: int
    nn_outputs: np.ndarray
    crn_outputs: np.ndarray
    abs_error: np.ndarray
    agree: np.ndarray
    converged: np.ndarray
    status: np.ndarray
    t_eps: np.ndarray
    t_argmax: np.ndarray
    steps: np.ndarray
    t1: float
    eps: float
    wall_s: float
    rate_samples: tuple[RateSample, ...] = ()

    @property
    def agreement(self) -> int:
        return int(self.agree.sum())

    @property
    def max_abs_error(self) -> float:
        return float(np.nanmax(self.abs_error)) if self.n else float("nan")

    def disagreements(self) -> np.ndarray:
        """Indices of the samples whose argmax differs."""
        return np.flatnonzero(~self.agree)

    def convergence_summary(self) -> dict:
        """Median, 90th percentile and max of `t_eps` and `t_argmax`."""

        def stats(t):
            t = np.asarray(t, float)
            finite = t[np.isfinite(t)]
            if finite.size == 0:
                return {"median": None, "p90": None, "max": None, "never": int(t.size)}
            with np.errstate(invalid="ignore"):  # inf - inf where "never" reaches p90
                p90 = float(np.percentile(t, 90))
            return {
                "median": float(np.median(t)) if finite.size == t.size else None,
                "p90": p90 if np.isfinite(p90) else None,
                "max": float(t.max()) if finite.size == t.size else None,
                "never": int(t.size - finite.size),
            }

        return {
            f"eps_{self.eps:g}": stats(self.t_eps),
            "argmax_stable": stats(self.t_argmax),
        }

    def as_dict(self) -> dict:
        return {
            "n_examples": self.n,
            "agreement": self.agreement,
            "max_abs_error": self.max_abs_error,
            "steady": int(self.converged.sum()),  # samples at a steady state at t1
            "failed": int((self.status != Status.OK).sum()),
            "t1": self.t1,
            "wall_s": self.wall_s,
            "steps_median": float(np.median(self.steps)) if self.n else None,
            "convergence": self.convergence_summary(),
            "disagreements": self.disagreements().tolist(),
            "rate_samples": [dataclasses.asdict(r) for r in self.rate_samples],
        }


def _argmax_agree(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ok = np.all(np.isfinite(a), axis=1)
    return ok & (
        np.argmax(np.where(np.isfinite(a), a, -np.inf), axis=1) == np.argmax(b, axis=1)
    )


def verify(
    model,
    crn: CRN,
    inputs,
    *,
    t1: float = 50.0,
    rate_samples: int = 0,
    seed: int = 0,
    eps: float = 1e-3,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    progress: bool = False,
    store=None,
    resume: bool = False,
    **simulate_kwargs,
) -> VerifyReport:
    """Simulate `inputs` through `crn` and compare with the network's forward pass.

    Arguments:
        model: a `BinaryMLP` or a list of `(W, b)` pairs (what `nn_to_crn` took).
        crn: the compiled CRN (full or reduced; it must declare the network's inputs
            and outputs, as `nn_to_crn` does).
        inputs: shape `(n, features)`, exactly what the network sees.
        t1: simulated time.
        rate_samples: also re-simulate every input under this many sets of
            random rate constants, log-uniform in [0.1, 10] (`jaxcrn.scan.
            log_uniform`; the empirical test of rate independence), all of them in
            one batch of `n * rate_samples` samples. Each set runs to
            `t1 / min(rates)` (slower reactions take proportionally longer): the
            batch simulates each set's rates divided by their minimum to `t1`,
            which is the same solution on a rescaled time axis (mass-action
            kinetics have no time scale but the rates').
        seed: seed of the random rates.
        eps: tolerance of the convergence time `t_eps`.
        store, resume: write the results to the folder `store` as they are
            computed (`store/main`, and `store/rates` for the rate sets), and
            with `resume` continue an interrupted run from it (see
            `simulate_batch`).
        rtol, atol, **simulate_kwargs: passed to `simulate_batch`.

    Returns:
        A `VerifyReport`.

    Example:
        >>> import numpy as np
        >>> from jaxcrn import nn_to_crn, verify
        >>> params = [(np.array([[1.0, -1.0]]), np.array([0.5, 0.0])),
        ...           (np.array([[1.0], [-1.0]]), np.array([0.0]))]
        >>> rep = verify(params, nn_to_crn(params), np.array([[1.0], [-2.0]]),
        ...              t1=100.0, progress=False)
        >>> rep.agreement, bool(rep.max_abs_error < 1e-5)
        (2, True)
    """
    params = network_params(model)
    x = np.asarray(inputs, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != params[0][0].shape[0]:
        raise ValueError(
            f"inputs has shape {x.shape}; the network expects (n, "
            f"{params[0][0].shape[0]})."
        )
    if len(crn.inputs) != x.shape[1] or len(crn.outputs) != params[-1][0].shape[1]:
        raise ValueError(
            f"the CRN declares {len(crn.inputs)} inputs and {len(crn.outputs)} outputs "
            f"but the network has {x.shape[1]} and {params[-1][0].shape[1]}; compile "
            "it with nn_to_crn."
        )
    from ._nn import forward
    from ._reproduce import default_grid

    nn_out = forward(params, x)
    net = compile_crn(crn)
    simulate_kwargs.setdefault("saveat", default_grid(t1))
    start = time.perf_counter()
    res = simulate_batch(
        net,
        x,
        t1,
        rtol=rtol,
        atol=atol,
        progress=progress,
        store=None if store is None else os.path.join(os.fspath(store), "main"),
        resume=resume,
        **simulate_kwargs,
    )
    wall = time.perf_counter() - start
    out = np.asarray(res.outputs_final)
    err = np.max(np.abs(out - nn_out), axis=1)
    agree = _argmax_agree(out, nn_out)
    t_eps = np.full(len(x), np.inf)
    t_arg = np.full(len(x), np.inf)
    if np.asarray(res.outputs).shape[1] > 1:
        import jax

        ct = jax.vmap(lambda t, o, f: convergence_times(t, o, f, eps=eps))(
            res.ts, res.outputs, res.outputs_final
        )
        ok = np.asarray(res.status) == Status.OK
        t_eps = np.where(ok, np.asarray(ct.all_abs_time), np.inf)
        t_arg = np.where(ok, np.asarray(ct.argmax_time), np.inf)
    samples = _rate_samples(
        net,
        x,
        nn_out,
        out,
        t1,
        rate_samples,
        seed,
        rtol=rtol,
        atol=atol,
        progress=progress,
        store=None if store is None else os.path.join(os.fspath(store), "rates"),
        resume=resume,
        **simulate_kwargs,
    )
    return VerifyReport(
        n=len(x),
        nn_outputs=nn_out,
        crn_outputs=out,
        abs_error=err,
        agree=agree,
        converged=np.asarray(res.converged),
        status=np.asarray(res.status),
        t_eps=t_eps,
        t_argmax=t_arg,
        steps=np.asarray(res.num_steps),
        t1=float(t1),
        eps=eps,
        wall_s=wall,
        rate_samples=tuple(samples),
    )


def _rate_samples(
    net, x, nn_out, out, t1, k, seed, *, store, resume, **simulate_kwargs
) -> list[RateSample]:
    """`k` random rate sets, every input under each, in one batch."""
    if k == 0:
        return []
    from .scan import cross, log_uniform

    rates = log_uniform(net, k, 0.1, 10.0, seed=seed)
    low = rates.min(axis=1)
    # y' = f(y; r / m) is y(t / m) (mass action: f(y; c r) = c f(y; r)), so the
    # state at t1 under rates r / m is the state at t1 / m under r
    kw = dict(simulate_kwargs)
    kw.pop("saveat", None)
    xs, rs = cross(x, rates / low[:, None])
    res = simulate_batch(
        net, xs, t1, rates=rs, saveat=None, store=store, resume=resume, **kw
    )
    n = len(x)
    outs = np.asarray(res.outputs_final).reshape(k, n, -1)
    status = np.asarray(res.status).reshape(k, n)
    samples = []
    for j in range(k):
        o = outs[j]
        samples.append(
            RateSample(
                seed=seed,
                rates_min=float(low[j]),
                rates_max=float(rates[j].max()),
                t1=float(t1 / low[j]),
                agreement=int(_argmax_agree(o, nn_out).sum()),
                max_abs_error=float(np.nanmax(np.abs(o - nn_out))) if n else 0.0,
                max_change=float(np.nanmax(np.abs(o - out))) if n else 0.0,
                ok=int((status[j] == Status.OK).sum()),
            )
        )
    return samples
