"""Means with Student-t confidence intervals over seeds (no SciPy: the 97.5% quantiles are tabulated)."""

from __future__ import annotations

import math
from collections.abc import Sequence


# t_{0.975, df} for df = 1..30 (two-sided 95%); beyond 30 the Cornish-Fisher correction of z is within 1e-3.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
_Z975 = 1.959964


def t_quantile_975(df: int) -> float:
    if df < 1:
        raise ValueError(f"need at least 2 values for a confidence interval, got df={df}")
    if df <= len(_T975):
        return _T975[df - 1]
    return _Z975 + (_Z975**3 + _Z975) / (4 * df)


def mean_ci95(values: Sequence[float]) -> dict[str, float]:
    """Mean, sample standard deviation and the half-width of the two-sided 95% t-interval of the mean."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return {"mean": mean, "std": float("nan"), "ci95": float("nan"), "count": n}
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return {"mean": mean, "std": std, "ci95": t_quantile_975(n - 1) * std / math.sqrt(n), "count": n}
