"""Anomaly detectors: numba kernels over struct-of-arrays state, wrapped by thin classes.

Every detector scores a block of samples of many series in one call and returns scores in [0, 1].
"""

from core.detect.robust_z import RobustZ
from core.detect.series import SeriesRegistry

__all__ = ["RobustZ", "SeriesRegistry"]
