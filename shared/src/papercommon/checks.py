"""Argument checks that name the argument, what was expected and what was given.

Every public function of every package validates its inputs with these, so that a bad value fails the
same way everywhere:

    >>> check_positive("lr", 0.0)
    Traceback (most recent call last):
    ...
    ValueError: lr: expected a finite number > 0, got 0.0
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def check_finite(name: str, x: Any) -> float:
    """A real, finite number (not NaN, not +-inf, not a bool)."""
    if not _is_number(x) or not math.isfinite(x):
        raise ValueError(f"{name}: expected a finite number, got {x!r}")
    return x


def check_positive(name: str, x: Any, *, allow_zero: bool = False) -> float:
    """A finite number > 0 (``>= 0`` with ``allow_zero``)."""
    ok = _is_number(x) and math.isfinite(x) and (x >= 0 if allow_zero else x > 0)
    if not ok:
        raise ValueError(f"{name}: expected a finite number {'>=' if allow_zero else '>'} 0, got {x!r}")
    return x


def check_int(name: str, x: Any, *, min_value: int | None = 1) -> int:
    """An int (not a bool), ``>= min_value`` unless ``min_value`` is None."""
    if not isinstance(x, int) or isinstance(x, bool) or (min_value is not None and x < min_value):
        bound = "" if min_value is None else f" >= {min_value}"
        raise ValueError(f"{name}: expected an int{bound}, got {x!r}")
    return x


def check_range(name: str, x: Any, low: float, high: float, *, inclusive: tuple[bool, bool] = (True, True)) -> float:
    """A finite number in ``[low, high]`` (ends open where ``inclusive`` says False)."""
    lo_ok = _is_number(x) and math.isfinite(x) and (x >= low if inclusive[0] else x > low)
    hi_ok = lo_ok and (x <= high if inclusive[1] else x < high)
    if not hi_ok:
        interval = f"{'[' if inclusive[0] else '('}{low}, {high}{']' if inclusive[1] else ')'}"
        raise ValueError(f"{name}: expected a finite number in {interval}, got {x!r}")
    return x


def check_choice(name: str, x: Any, choices: Iterable[Any]) -> Any:
    """One of ``choices``."""
    choices = tuple(choices)
    if x not in choices:
        raise ValueError(f"{name}: expected one of {choices}, got {x!r}")
    return x


def check_tensor(name: str, t: Any, *, ndim: int | tuple[int, ...] | None = None,
                 dtypes: tuple[torch.dtype, ...] | None = None, finite: bool = False) -> torch.Tensor:
    """A tensor of the given rank(s) and dtype(s); ``finite`` also rejects NaN and inf entries."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    if ndim is not None:
        ranks = (ndim,) if isinstance(ndim, int) else ndim
        if t.ndim not in ranks:
            raise ValueError(f"{name}: expected a tensor with {' or '.join(map(str, ranks))} dims, "
                             f"got shape {tuple(t.shape)}")
    if dtypes is not None and t.dtype not in dtypes:
        raise TypeError(f"{name}: expected dtype in {[str(d) for d in dtypes]}, got {t.dtype}")
    if finite and t.is_floating_point() and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name}: expected finite values, got NaN or inf entries")
    return t
