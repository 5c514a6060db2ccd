"""Tsitouras' explicit 5(4) Runge-Kutta pair (FSAL) with its 4th-order dense
output and Hairer's stiffness estimate; shape-agnostic stage arithmetic for the
batch engine (one step size per lane).

Reference: Ch. Tsitouras, "Runge-Kutta pairs of order 5(4) satisfying only the
first column simplifying assumption", Comput. Math. Appl. 62, 770-775 (2011). The
coefficients are those of the paper (as in OrdinaryDiffEq.jl and diffrax).
"""

import numpy as np


__all__ = ["tsit5_stages", "tsit5_weights", "stiffness_estimate"]

ORDER = 5
ERROR_ORDER = 5  # diffrax's convention for Tsit5 (an integral controller on 1/5)

_A = (
    (0.161,),
    (
        -0.008480655492356988544426874250230774675121177393430391537369234245294192976164141156943,
        0.3354806554923569885444268742502307746751211773934303915373692342452941929761641411569,
    ),  # noqa: E501
    (
        2.897153057105493432130432594192938764924887287701866490314866693455023795137503079289,
        -6.359448489975074843148159912383825625952700647415626703305928850207288721235210244366,
        4.362295432869581411017727318190886861027813359713760212991062156752264926097707165077,
    ),  # noqa: E501
    (
        5.325864828439256604428877920840511317836476253097040101202360397727981648835607691791,
        -11.74888356406282787774717033978577296188744178259862899288666928009020615663593781589,
        7.495539342889836208304604784564358155658679161518186721010132816213648793440552049753,
        -0.09249506636175524925650207933207191611349983406029535244034750452930469056411389539635,
    ),  # noqa: E501
    (
        5.861455442946420028659251486982647890394337666164814434818157239052507339770711679748,
        -12.92096931784710929170611868178335939541780751955743459166312250439928519268343184452,
        8.159367898576158643180400794539253485181918321135053305748355423955009222648673734986,
        -0.07158497328140099722453054252582973869127213147363544882721139659546372402303777878835,
        -0.02826905039406838290900305721271224146717633626879770007617876201276764571291579142206,
    ),  # noqa: E501
    (
        0.09646076681806522951816731316512876333711995238157997181903319145764851595234062815396,
        0.01,
        0.4798896504144995747752495322905965199130404621990332488332634944254542060153074523509,
        1.379008574103741893192274821856872770756462643091360525934940067397245698027561293331,
        -3.290069515436080679901047585711363850115683290894936158531296799594813811049925401677,
        2.324710524099773982415355918398765796109060233222962411944060046314465391054716027841,
    ),  # noqa: E501
)
_C = (
    0.0,
    0.161,
    0.327,
    0.9,
    0.9800255409045096857298102862870245954942137979563024768854764293221195950761080302604,
    1.0,
    1.0,
)  # noqa: E501
# b - b_hat (the last stage is f(t + h, y1): first same as last)
_E = (
    0.09646076681806522951816731316512876333711995238157997181903319145764851595234062815396
    - 0.09468075576583945807478876255758922856117527357724631226139574065785592789071067303271,  # noqa: E501
    0.01
    - 0.009183565540343253096776363936645313759813746240984095238905939532922955247253608687270,  # noqa: E501
    0.4798896504144995747752495322905965199130404621990332488332634944254542060153074523509
    - 0.4877705284247615707855642599631228241516691959761363774365216240304071651579571959813,  # noqa: E501
    1.379008574103741893192274821856872770756462643091360525934940067397245698027561293331
    - 1.234297566930478985655109673884237654035539930748192848315425833500484878378061439761,  # noqa: E501
    -3.290069515436080679901047585711363850115683290894936158531296799594813811049925401677
    + 2.707712349983525454881109975059321670689605166938197378763992255714444407154902012702,  # noqa: E501
    2.324710524099773982415355918398765796109060233222962411944060046314465391054716027841
    - 1.866628418170587035753719399566211498666255505244122593996591602841258328965767580089,  # noqa: E501
    -1.0 / 66.0,
)

# dense-output weights b_i(theta) = scale * theta^(1 or 2) * prod (theta - root)
# * (theta^2 + q1 theta + q0) (the interpolant of the paper, factored)
_DENSE = (
    (
        -1.0530884977290216,
        (1.3299890189751412,),
        (-1.4364028541716351, 0.7139816917074209),
    ),  # noqa: E501
    (0.1017, (), (-2.1966568338249754, 1.2949852507374631)),
    (2.490627285651252793, (), (-2.38535645472061657, 1.57803468208092486)),
    (-16.54810288924490272, (1.21712927295533244, 0.61620406037800089), None),
    (47.37952196281928122, (1.203071208372362603, 0.658047292653547382), None),
    (-34.87065786149660974, (1.2, 0.666666666666666667), None),
    (2.5, (1.0, 0.6), None),
)

# Hairer's stiffness test: a step with h |lambda| beyond this is at the edge of
# Tsit5's stability region (which ends at 3.51 on the negative real axis)
STABILITY_EDGE = 3.0


def _combine(coeffs, ks):
    out = None
    for c, k in zip(coeffs, ks, strict=False):
        c = float(c)
        if c == 0.0:
            continue
        term = k if c == 1.0 else c * k
        out = term if out is None else out + term
    return 0.0 if out is None else out


def tsit5_stages(f, t0, h, y0, f0):
    """One Tsit5 step. `t0`, `h` scalars or broadcastable against the lane axis.

    Returns `(y1, error, ks, u6)`: the solution, the error estimate, the 7 stage
    derivatives (`ks[6] = f(t0 + h, y1)`, the next step's `f0`) and the 6th stage
    value (for `stiffness_estimate`)."""
    ks = [f0]
    us = []
    for i, a in enumerate(_A):
        u = y0 + h * _combine(a, ks)
        us.append(u)
        ks.append(f(t0 + float(_C[i + 1]) * h, u))
    y1 = us[-1]  # the last stage is the solution
    return y1, h * _combine(_E, ks), ks, us[-2]


def tsit5_weights(theta):
    """The dense-output weights `b_i(theta)`, i = 1..7: `y(t0 + theta h) = y0 + h
    sum_i b_i(theta) k_i`."""
    out = []
    for i, (scale, roots, quad) in enumerate(_DENSE):
        w = scale * (theta if i == 0 else theta * theta)
        for r in roots:
            w = w * (theta - r)
        if quad is not None:
            w = w * (theta * theta + quad[0] * theta + quad[1])
        out.append(w)
    return out


def stiffness_estimate(h, ks, y1, u6, weight, xp=np):
    """Hairer's estimate of `h |lambda|` from the last two stages,
    `h |k7 - k6| / |y1 - u6|`, reduced over the species (axis 0); returns
    `(h_lambda, valid)`.

    The norms are weighted by `weight` (the error weights `1 / (atol + rtol |y|)`):
    unweighted, the difference is dominated by the abundant species and misses a
    fast mode of a scarce one (Robertson's B at 1e-5 relaxes at rate ~2e3 while
    A and C change slowly: unweighted the estimate stays near 0.9 on steps that
    are limited by stability, weighted it reads 3.2-3.6)."""
    num = xp.sum(xp.square(weight * (ks[6] - ks[5])), axis=0)
    den = xp.sum(xp.square(weight * (y1 - u6)), axis=0)
    valid = den > 0
    return h * xp.sqrt(num / xp.where(valid, den, 1.0)), valid
