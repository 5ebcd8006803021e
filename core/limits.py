"""Product limits: per product and field, the readings beyond which a device is out of range.

Limits are configuration, not learning (``config/limits.yaml``). The pipeline hands a device's
limits to its detector when it first sees the device: a reading beyond them raises the level
at once (``OutOfRange``), and the trend detector counts the time until a field reaches one
(``DetectorEvent.time_to_limit_s``).

>>> limits = ProductLimits.model_validate(
...     {"heat_pump": {"discharge_temp": {"hi": 80.0}, "suction_pressure": {"lo": 1.0}}})
>>> lo, hi = limits.arrays("heat_pump", ("discharge_temp", "suction_pressure", "outdoor_temp"))
>>> lo.tolist(), hi.tolist()
([-inf, 1.0, -inf], [80.0, inf, inf])
>>> limits.arrays("router", ("latency",)) is None
True
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, RootModel, ValidationError, model_validator

from core.errors import LimitsFileError
from edge.problems import problems

__all__ = ["FieldLimits", "ProductLimits", "load_limits"]


class FieldLimits(BaseModel):
    """Lowest and highest reading a field of the product may have (either may be left out)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lo: float | None = None
    hi: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> FieldLimits:
        if self.lo is not None and self.hi is not None and not self.lo < self.hi:
            raise ValueError(f"lo ({self.lo}) must be below hi ({self.hi})")
        return self


class ProductLimits(RootModel[dict[str, dict[str, FieldLimits]]]):
    """Limits by product, then field."""

    def arrays(self, product: str | None, fields: Sequence[str],
               ) -> tuple[NDArray[np.float64], NDArray[np.float64]] | None:
        """``lo`` and ``hi`` for ``fields`` (±inf where a field has none); None when the
        product has no limits at all."""
        by_field = self.root.get(product or "")
        if not by_field:
            return None
        none = FieldLimits()
        lo = np.array([by_field.get(f, none).lo for f in fields], dtype=np.float64)
        hi = np.array([by_field.get(f, none).hi for f in fields], dtype=np.float64)
        return np.nan_to_num(lo, nan=-np.inf), np.nan_to_num(hi, nan=np.inf)


def load_limits(path: Path) -> ProductLimits:
    """Read and validate a limits file (YAML: product → field → ``lo``/``hi``)."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return ProductLimits.model_validate(raw)
    except ValidationError as exc:
        raise LimitsFileError(f"{path}: {'; '.join(problems(exc))}") from exc
    except (OSError, yaml.YAMLError) as exc:
        raise LimitsFileError(f"{path}: {exc}") from exc
