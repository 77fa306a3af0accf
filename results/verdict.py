"""Does a measured cell reproduce a published number?  The verdict rule of `bench table --compare-paper`.

A published number is a mean over the source's runs and ours is a mean over our seeds, so
both carry sampling error; the question is whether their difference is larger than both
errors together explain.  The rule is a two-sided Welch's t-test (Welch 1947; the unequal-
variance test the tables already use for their daggers) at alpha = 0.05, computed from the two
means, sample stds and n:

    d     = measured mean - published mean                          (percentage points)
    SE    = sqrt(s_pub^2 / n_pub + s_ours^2 / n_ours)               (Welch's combined standard error)
    bound = t(0.975, nu) * SE + r                                   nu: Welch-Satterthwaite degrees of freedom
    consistent when |d| <= bound, else higher (d > 0) or lower (d < 0)

``t(0.975, nu)`` rather than a flat 2: with five published runs and three seeds of ours nu is
about 4-6 and t about 2.5-2.8, so a flat 2 would call a reproduction inconsistent far more
often than the 5% it claims.  ``r`` is half a unit of the published number's last printed
digit (0.005 for 52.71, 0.05 for 66.8): a printed value is known only to its rounding, which
matters when the published std is tiny (Animal-10N: 66.8 +- 0.03).

When the source gives no std or no n, its spread is unknown: the bound becomes our own
t(0.975, n_ours - 1) * s_ours / sqrt(n_ours) + a stated tolerance of 1.0 point + r, and the
verdict says so (``*``).  Nothing is judged when our n < 2 (no spread of ours to test); the
caller also leaves unjudged a number whose metric (Best or Last) the source does not state,
and a cell trained with another recipe than the published one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

VERDICT_ALPHA = 0.05  # two-sided, as the dagger test's alpha (results/tables.py SIGNIFICANCE_ALPHA)
FALLBACK_TOLERANCE = 1.0  # points allowed for a published number without std or n (stated in every caption)
CONSISTENT, HIGHER, LOWER, NOT_JUDGED = "consistent", "higher", "lower", "not judged"
WELCH, TOLERANCE = "welch", "tolerance"


@dataclass(frozen=True)
class Verdict:
    verdict: str  # consistent | higher | lower | not judged
    difference: float  # measured - published, points (NaN when there is nothing to subtract)
    bound: float  # the largest |difference| called consistent (NaN when not judged)
    rule: str  # welch | tolerance | why it was not judged


def rounding_half_unit(decimals: int) -> float:
    """Half a unit of the last printed digit: 52.71 (2 decimals) -> 0.005, 66.8 -> 0.05."""
    return 0.5 * 10.0 ** (-decimals)


def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def welch_degrees_of_freedom(var_a: float, n_a: int, var_b: float, n_b: int) -> float:
    """Welch-Satterthwaite degrees of freedom of the difference of two means (variances of the
    samples, not of the means).  With one spread zero it is the other sample's n - 1."""
    a, b = var_a / n_a, var_b / n_b
    if a == 0 and b == 0:
        return float(min(n_a, n_b) - 1)
    return (a + b) ** 2 / (a ** 2 / (n_a - 1) + b ** 2 / (n_b - 1))


def judge(measured_mean: float, measured_std: float, measured_n: int, published: float,
          published_std: float | None, published_n: int | None, published_decimals: int = 2,
          alpha: float = VERDICT_ALPHA, tolerance: float = FALLBACK_TOLERANCE) -> Verdict:
    """The verdict of one measured cell (mean, sample std, n over seeds) against one published
    number (mean, std, n of the source's runs; std and n None where the source gives none)."""
    from scipy.stats import t as student_t

    difference = measured_mean - published if not _missing(measured_mean) else math.nan
    if _missing(measured_mean) or measured_n < 2 or _missing(measured_std):
        return Verdict(NOT_JUDGED, difference, math.nan, "n < 2")
    rounding = rounding_half_unit(published_decimals)
    if _missing(published_std) or _missing(published_n) or int(published_n) < 2:
        ours = measured_std / math.sqrt(measured_n)
        bound = student_t.ppf(1 - alpha / 2, measured_n - 1) * ours + tolerance + rounding
        rule = TOLERANCE
    else:
        var_ours, var_pub, n_pub = measured_std ** 2, float(published_std) ** 2, int(published_n)
        se = math.sqrt(var_pub / n_pub + var_ours / measured_n)
        nu = welch_degrees_of_freedom(var_pub, n_pub, var_ours, measured_n)
        bound = student_t.ppf(1 - alpha / 2, nu) * se + rounding
        rule = WELCH
    if abs(difference) <= bound:
        return Verdict(CONSISTENT, difference, bound, rule)
    return Verdict(HIGHER if difference > 0 else LOWER, difference, bound, rule)


# The rule in words, for captions and footers (Markdown/CSV text, and LaTeX with its math).
RULE_TEXT = (
    f"Diff = measured - published (points). Verdict: a two-sided Welch's t-test at α = {VERDICT_ALPHA} from both "
    f"means, stds and n: consistent when |Diff| ≤ t·sqrt(s_pub²/n_pub + s_ours²/n_ours) + r, where t is the "
    f"97.5% quantile of Student's t with Welch-Satterthwaite degrees of freedom and r half a unit of the published "
    f"number's last printed digit; higher or lower otherwise. * = the source gives no std or n: the bound is "
    f"t·s_ours/sqrt(n_ours) + {FALLBACK_TOLERANCE:.1f} point + r (a stated tolerance, not a test). Not judged: "
    f"the source does not say whether its number is Best or Last, the measured recipe is not the published one, "
    f"or our n < 2.")
RULE_LATEX = (
    f"Diff = measured $-$ published (points). Verdict: a two-sided Welch's $t$-test at $\\alpha = {VERDICT_ALPHA}$ "
    f"from both means, stds and $n$: consistent when $|d| \\le t\\,\\sqrt{{s_p^2/n_p + s^2/n}} + r$, where $t$ is "
    f"the 97.5\\% quantile of Student's $t$ with Welch--Satterthwaite degrees of freedom and $r$ half a unit of "
    f"the published number's last printed digit; higher or lower otherwise. $^*$: the source gives no std or $n$: "
    f"the bound is $t\\,s/\\sqrt{{n}} + {FALLBACK_TOLERANCE:.1f}$ point $+\\,r$ (a stated tolerance, not a test). "
    f"Not judged: the source does not say whether its number is Best or Last, the measured recipe is not the "
    f"published one, or our $n < 2$.")
