"""Value checks and Markdown formatting shared by the model cards and the results datasets."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

from ..methods import METHODS
from ..variants import get_variant


def is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    return method


# The type rule of every evaluation-row column, for the results dataset and the model card alike.
_STRINGS = ("model", "task", "metric", "method", "variant", "base_model")
_NUMBERS = ("value", "stderr")
_INTEGERS = ("iteration", "num_fewshot")


def check_row(row: Mapping[str, Any], where: str, required: tuple[str, ...], allowed: set[str]) -> dict[str, Any]:
    """The one check of an evaluation row; `where` names it in errors ("Result row 3", "eval_results[0]")."""
    if not isinstance(row, Mapping):
        raise TypeError(f"{where} must be a dict, got {type(row).__name__}: {row!r}")
    missing = [key for key in required if row.get(key) is None]
    if missing:
        raise ValueError(f"{where} is missing {missing}: {dict(row)}")
    unknown = sorted(set(row) - allowed)
    if unknown:
        raise ValueError(f"{where} has unknown keys {unknown} (allowed: {sorted(allowed)}): {dict(row)}")
    for key in _STRINGS:
        if row.get(key) is not None and (not isinstance(row[key], str) or not row[key]):
            raise ValueError(f"{where}: {key!r} must be a non-empty string, got {row[key]!r}")
    for key in _NUMBERS:
        if row.get(key) is not None and not is_number(row[key]):
            raise ValueError(f"{where}: {key!r} must be a finite number, got {row[key]!r}: {dict(row)}")
    for key in _INTEGERS:
        if row.get(key) is not None and not is_int(row[key]):
            raise ValueError(f"{where}: {key!r} must be an integer, got {row[key]!r}: {dict(row)}")
    if row.get("method") is not None:
        check_method(row["method"])
    if row.get("variant") is not None:
        get_variant(row["variant"])  # names the unknown variant and lists the known ones
    return dict(row)


def format_value(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:.6g}"
        return text if any(c in text for c in ".en") else text + ".0"  # 1.0 stays "1.0": a float, not a count
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(item) for item in value)
    return str(value)


def cell(text: Any) -> str:
    # A "|" inside a value would end the Markdown table cell.
    return str(text).replace("|", "\\|").replace("\n", " ")
