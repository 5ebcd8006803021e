"""A device's cohorts: the groups of devices it shares a product, model, firmware, production
batch or region with (issue 20).

Fleet incidents (:mod:`rules.incidents`) group cases by cohort, and the peer detector and the
firmware rollout view compare a device with its cohort: every one of them takes its keys from
here. The metadata comes from the customer registry (:class:`rules.registry.DeviceMeta`:
``firmware``, ``model``, ``batch``, ``region``) and, for the firmware, from what the device
reports in its status messages (the ``devices`` table, :func:`reported_firmware`), which wins:
the device knows what it runs better than a file written at installation.

A cohort is always within one product (a rule, and a fault, belongs to one product), and a
dimension the device has no value for gives no cohort.

>>> from rules.registry import DeviceMeta
>>> meta = DeviceMeta("acme", "hp-1", "heat_pump", "kim", firmware="2.5.0", batch="B17",
...                   region="KR-11")
>>> [c.key for c in cohorts_of(meta, reported="2.6.0")]
['heat_pump', 'heat_pump/firmware=2.6.0', 'heat_pump/batch=B17', 'heat_pump/region=KR-11']
>>> [c.key for c in cohorts_of(meta, dimensions=("firmware", "model"))]
['heat_pump/firmware=2.5.0']
>>> Cohort.parse("heat_pump/batch=B17")
Cohort(product='heat_pump', dimension='batch', value='B17')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from sqlalchemy import select
from sqlalchemy.orm import Session

from rules.db import DeviceRow
from rules.errors import RuleError
from rules.registry import DeviceMeta

__all__ = ["DIMENSIONS", "Cohort", "Dimension", "cohorts_of", "reported_firmware"]

Dimension = Literal["product", "model", "firmware", "batch", "region"]
#: every dimension, broadest first
DIMENSIONS: tuple[Dimension, ...] = get_args(Dimension)


@dataclass(frozen=True, slots=True)
class Cohort:
    """One group of devices: those of ``product`` whose ``dimension`` is ``value``."""

    product: str
    dimension: Dimension
    #: the product's name again for the product-wide cohort
    value: str

    @property
    def key(self) -> str:
        """``product/dimension=value`` (``product`` alone for the whole product): stored with
        incidents, shown to people, parsed back by :meth:`parse`."""
        if self.dimension == "product":
            return self.product
        return f"{self.product}/{self.dimension}={self.value}"

    @classmethod
    def parse(cls, key: str) -> Cohort:
        """The cohort a :attr:`key` names; :class:`RuleError` for anything else."""
        product, _, rest = key.partition("/")
        if not rest:
            if not product:
                raise RuleError("an empty cohort key")
            return cls(product, "product", product)
        dimension, sep, value = rest.partition("=")
        if not sep or not value or dimension not in DIMENSIONS or dimension == "product":
            raise RuleError(f"not a cohort key: {key!r} (product/dimension=value, with one of "
                            f"{', '.join(DIMENSIONS[1:])})")
        return cls(product, dimension, value)

    def __str__(self) -> str:
        return self.key


def cohorts_of(meta: DeviceMeta, reported: str | None = None,
               dimensions: Sequence[Dimension] = DIMENSIONS) -> list[Cohort]:
    """The cohorts of a device, in the order of ``dimensions``; ``reported``: the firmware the
    device itself reported (wins over the registry's)."""
    values: dict[Dimension, str] = {
        "product": meta.product, "model": meta.model,
        "firmware": reported or meta.firmware, "batch": meta.batch, "region": meta.region}
    if not meta.product:
        return []
    return [Cohort(meta.product, d, values[d]) for d in dimensions if values[d]]


def reported_firmware(session: Session, tenant: str, device_id: str) -> str | None:
    """The firmware the device last reported in a status message (None: it never said)."""
    return session.scalar(select(DeviceRow.firmware).where(
        DeviceRow.tenant == tenant, DeviceRow.device_id == device_id))
