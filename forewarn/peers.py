"""The peer groups and cohorts core's peer detector compares devices in (issue 20), from the
customer registry: core knows no registry, so the shell hands it this function.

A device's **peer group** is what should make identical devices read alike under the same
weather: tenant, product, and the registry's model and region where it names them. Its
**cohort** splits the group further by firmware (what the device reports in its telemetry,
else the registry's) and production batch. A dimension the registry does not name is left out.

>>> from rules.registry import parse_registry
>>> registry = parse_registry("customers: [{id: kim}]\\ndevices: {hp-1: {customer: kim, "
...                           "firmware: '2.5'}}", tenant="acme")
>>> labels = registry_peer_labels(registry)
>>> labels("acme", "hp-1", "heat_pump", "2.6")
('acme/heat_pump', 'acme/heat_pump/firmware=2.6')
>>> labels("acme", "hp-1", "heat_pump", None)
('acme/heat_pump', 'acme/heat_pump/firmware=2.5')
>>> labels = registry_peer_labels(parse_registry(
...     "customers: [{id: kim}]\\ndevices: {hp-2: {customer: kim, model: M2, region: KR-11, "
...     "batch: B17}}", tenant="acme"))
>>> group, cohort = labels("acme", "hp-2", "heat_pump", "2.6")
>>> group
'acme/heat_pump/model=M2/region=KR-11'
>>> cohort[len(group):]
'/firmware=2.6/batch=B17'
"""

from __future__ import annotations

from core.pipeline import PeerLabels
from rules.registry import CustomerRegistry

__all__ = ["registry_peer_labels"]


def registry_peer_labels(registry: CustomerRegistry,
                         group_dimensions: tuple[str, ...] = ("model", "region")) -> PeerLabels:
    """(tenant, device, product, reported firmware) → (peer group, cohort) from ``registry``;
    the group splits the product by ``group_dimensions`` (of ``model`` and ``region``)."""

    def labels(tenant: str, device_id: str, product: str, firmware: str | None
               ) -> tuple[str, str]:
        meta = registry.lookup(tenant, device_id, product)
        group = f"{tenant}/{meta.product or product}"
        for dimension, value in (("model", meta.model), ("region", meta.region)):
            # (a registry that names none of them: the product alone)
            if value and dimension in group_dimensions:
                group += f"/{dimension}={value}"
        cohort = f"{group}/firmware={firmware or meta.firmware or '-'}"
        if meta.batch:
            cohort += f"/batch={meta.batch}"
        return group, cohort

    return labels
