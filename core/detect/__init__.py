"""Anomaly detectors: numba kernels over struct-of-arrays state, wrapped by thin classes.

Every detector scores a block of samples of many series in one call and returns scores in
[0, 1]. The service runs one :class:`Ensemble`, built by :func:`make_detector`:

>>> import numpy as np
>>> det = make_detector(DetectorConfig())
>>> det.update(np.array([0, 1]), np.zeros((3, 2))).shape
(3, 2)
"""

from core.detect.config import DetectorConfig, make_detector
from core.detect.drift import Drift
from core.detect.dropout import Dropout
from core.detect.ensemble import Ensemble, Finding
from core.detect.extreme import Extreme
from core.detect.likelihood import AnomalyLikelihood
from core.detect.multivariate import Multivariate
from core.detect.onset import Onset
from core.detect.out_of_range import OutOfRange
from core.detect.peer import Peer
from core.detect.peer_config import PeerConfig, make_peer
from core.detect.rate import RateOfChange
from core.detect.robust_z import RobustZ
from core.detect.seasonal import Seasonal
from core.detect.series import SeriesRegistry
from core.detect.stuck import Stuck
from core.detect.transition import Transition
from core.detect.window_shape import WindowShape

__all__ = [
    "AnomalyLikelihood",
    "DetectorConfig",
    "Drift",
    "Dropout",
    "Ensemble",
    "Extreme",
    "Finding",
    "Multivariate",
    "Onset",
    "OutOfRange",
    "Peer",
    "PeerConfig",
    "RateOfChange",
    "RobustZ",
    "Seasonal",
    "SeriesRegistry",
    "Stuck",
    "Transition",
    "WindowShape",
    "make_detector",
    "make_peer",
]
