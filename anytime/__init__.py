"""anytime: horizon-free learning-rate schedules and weight averaging for Optax.

The public API (docs/design.md section 3): the schedules of :mod:`anytime.schedules`,
the averaging rules, :func:`with_averaging` and :func:`averaged_params`.
"""

from anytime import averaging, schedules
from anytime.averaging import (
  AveragingState,
  averaged_params,
  ema,
  polyak,
  proportional_ema,
  with_averaging,
)
from anytime.schedules import (
  constant,
  cosine,
  inverse_sqrt,
  linear_decay,
  polynomial_decay,
  wsd,
)

__version__ = "0.1.0"

__all__ = [
  "AveragingState",
  "averaged_params",
  "averaging",
  "constant",
  "cosine",
  "ema",
  "inverse_sqrt",
  "linear_decay",
  "polyak",
  "polynomial_decay",
  "proportional_ema",
  "schedules",
  "with_averaging",
  "wsd",
]
