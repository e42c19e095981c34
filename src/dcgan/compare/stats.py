"""The statistics of a comparison over training seeds: each seed's score is one observation.

Welch's t interval for the difference of two means (no equal-variance assumption: a learning rate can
change how much a GAN's result varies, not only where it lands), a bootstrap over seeds as a check on
it, a verdict from the interval, and roughly how many seeds a side would resolve a gap of the size seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
POWER = 0.8  # for "seeds needed": the chance that a real gap of the observed size shows as a verdict
BOOTSTRAP_RESAMPLES = 10_000

BETTER, WORSE, CANT_TELL = "better", "worse", "can't tell with these seeds"


@dataclass(frozen=True)
class Summary:
    """One configuration's score over its seeds."""
    n: int
    mean: float
    sd: float  # over seeds (ddof=1); nan with one seed
    best: float
    worst: float


def summarize(values: list[float], lower_is_better: bool) -> Summary:
    array = np.asarray(values, dtype=float)
    sd = float(array.std(ddof=1)) if len(array) > 1 else math.nan
    best, worst = (array.min(), array.max()) if lower_is_better else (array.max(), array.min())
    return Summary(len(array), float(array.mean()), sd, float(best), float(worst))


@dataclass(frozen=True)
class Difference:
    """candidate mean - baseline mean, with Welch's interval, its p-value and a bootstrap interval."""
    difference: float
    low: float
    high: float
    df: float
    p_value: float
    bootstrap_low: float
    bootstrap_high: float


def welch_interval(candidate: list[float], baseline: list[float], confidence: float = CONFIDENCE
                   ) -> tuple[float, float, float, float, float]:
    """(difference of means, low, high, Welch-Satterthwaite degrees of freedom, two-sided p-value)."""
    a, b = np.asarray(candidate, dtype=float), np.asarray(baseline, dtype=float)
    difference = float(a.mean() - b.mean())
    var_a, var_b = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(var_a + var_b)
    if se == 0:  # every seed gave the same value on both sides: the difference is exact
        return difference, difference, difference, math.inf, 0.0 if difference else 1.0
    df = (var_a + var_b) ** 2 / (var_a ** 2 / (len(a) - 1) + var_b ** 2 / (len(b) - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    p_value = float(2 * stats.t.sf(abs(difference) / se, df))
    return difference, difference - half, difference + half, float(df), p_value


def bootstrap_interval(candidate: list[float], baseline: list[float], confidence: float = CONFIDENCE,
                       resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """Percentile interval of the difference of means, each side's seeds resampled with replacement.
    With 3 seeds a side it is coarse and narrower than Welch's: a check on the direction, not a verdict."""
    rng = np.random.default_rng(seed)
    a, b = np.asarray(candidate, dtype=float), np.asarray(baseline, dtype=float)
    means_a = rng.choice(a, size=(resamples, len(a))).mean(1)
    means_b = rng.choice(b, size=(resamples, len(b))).mean(1)
    low, high = np.quantile(means_a - means_b, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


def difference(candidate: list[float], baseline: list[float]) -> Difference:
    """Needs at least 2 seeds a side (a spread over seeds needs two)."""
    if min(len(candidate), len(baseline)) < 2:
        raise ValueError("a difference over seeds needs at least 2 seeds on each side")
    return Difference(*welch_interval(candidate, baseline), *bootstrap_interval(candidate, baseline))


def verdict(found: Difference, lower_is_better: bool) -> str:
    """better or worse when the whole interval lies on one side of zero; an interval that reaches zero,
    even at its edge, cannot tell."""
    if found.high < 0:
        return BETTER if lower_is_better else WORSE
    if found.low > 0:
        return WORSE if lower_is_better else BETTER
    return CANT_TELL


def seeds_needed(gap: float, sd_candidate: float, sd_baseline: float, confidence: float = CONFIDENCE,
                 power: float = POWER, most: int = 1000) -> int | None:
    """About how many seeds a side make a true gap of this size show with chance `power`: the smallest n
    at which the two-sample t-test, with the two spreads pooled, reaches that power (exact, by the
    noncentral t). None without a gap or a spread to go on, or beyond `most`."""
    sd = math.sqrt((sd_candidate ** 2 + sd_baseline ** 2) / 2)
    if not gap or not math.isfinite(sd) or sd == 0:
        return None
    effect = abs(gap) / sd
    for n in range(2, most + 1):
        df = 2 * n - 2
        critical = stats.t.ppf(0.5 + confidence / 2, df)
        shift = effect * math.sqrt(n / 2)
        if stats.nct.sf(critical, df, shift) + stats.nct.cdf(-critical, df, shift) >= power:
            return n
    return None
