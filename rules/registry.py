"""Who owns a device: customer, tier, time zone, language, contact, and what it is: firmware,
model, production batch and region (the cohort keys of :mod:`rules.cohorts`).

Read from a YAML file (``config/customers.example.yaml`` shows every key). A device the registry
does not know gets the ``defaults`` and stands for an unknown customer of its own
(``tenant/device``), so notices still go out and budgets still count per device, in English,
in UTC, on the team's default channel.

>>> registry = parse_registry('''
... customers:
...   - id: kim
...     name: Kim Min-jun
...     timezone: Asia/Seoul
...     language: ko
...     tier: premium
...     contact: {channel: webhook, address: "https://example.invalid/hook"}
... devices:
...   hp-1: {customer: kim, firmware: "2.4.1"}
... ''', source="customers.yaml")
>>> meta = registry.lookup("acme", "hp-1", "heat_pump")
>>> meta.customer_id, meta.language, meta.timezone, meta.firmware, meta.contact.channel
('kim', 'ko', 'Asia/Seoul', '2.4.1', 'webhook')
>>> registry.lookup("acme", "hp-9", "heat_pump").customer_id   # unknown: its own customer
'acme/hp-9'

Devices are keyed by tenant and id: the file's ``tenant`` (or a device's own ``tenant``, or the
deployment's tenant given to :func:`load_registry`) says whose a device is, and the same id
under another tenant is an unknown device of that tenant.

>>> bound = parse_registry('''
... tenant: acme
... customers: [{id: kim, contact: {channel: email, address: kim@example.com}}]
... devices: {hp-1: {customer: kim, product: heat_pump}}
... ''')
>>> bound.lookup("acme", "hp-1", "").customer_id, bound.lookup("other", "hp-1", "").customer_id
('kim', 'other/hp-1')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge.names import NAME_PATTERN
from rules.errors import RuleFileError
from rules.timeparse import QuietHours, TimeZoneName

__all__ = [
    "Contact",
    "CustomerRegistry",
    "DeviceMeta",
    "InstalledDevice",
    "load_registry",
    "parse_registry",
    "registry_from_dict",
]

Language = Literal["en", "ko"]


class Contact(BaseModel):
    """Where a customer's notices go; ``channel`` names an outbox channel (None: the default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: str | None = None
    #: e-mail address, webhook URL or Apprise URL, as the channel expects
    address: str = ""


class _Defaults(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tier: str = "standard"
    timezone: TimeZoneName = "UTC"
    language: Language = "en"
    quiet_hours: QuietHours | None = None
    notices_per_day: int | None = Field(default=None, ge=0)


class _Customer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    name: str = ""
    tier: str | None = None
    timezone: TimeZoneName | None = None
    language: Language | None = None
    contact: Contact = Field(default_factory=Contact)
    #: hours when customer notices wait (in the customer's time zone), e.g. ``21:00-08:00``
    quiet_hours: QuietHours | None = None
    #: at most this many customer notices per day (None: the rules file's budget)
    notices_per_day: int | None = Field(default=None, ge=0)


class _Device(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    customer: str
    #: the tenant the device belongs to, when it is not the file's: core dead-letters its
    #: messages under any other tenant (``tenant_mismatch``); None: the file's (or not bound)
    tenant: str | None = Field(default=None, pattern=NAME_PATTERN)
    firmware: str = ""
    #: the product's model (hardware revision), its production batch and the region it is
    #: installed in: devices sharing one are a cohort (``rules.cohorts``, fleet incidents)
    model: str = ""
    batch: str = ""
    region: str = ""
    product: str | None = None
    #: when it was installed (epoch seconds): a device that never reported since is "no data"
    installed_at: float | None = None


class _RegistryFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: the tenant of the devices listed (None: the deployment's tenant)
    tenant: str | None = None
    defaults: _Defaults = Field(default_factory=_Defaults)
    customers: tuple[_Customer, ...] = ()
    devices: dict[str, _Device] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DeviceMeta:
    """What the rules and the case book know about one device and its owner."""

    tenant: str
    device_id: str
    product: str
    customer_id: str
    customer_name: str = ""
    tier: str = "standard"
    timezone: str = "UTC"
    language: Language = "en"
    firmware: str = ""
    contact: Contact = field(default_factory=Contact)
    model: str = ""
    batch: str = ""
    region: str = ""
    quiet_hours: str | None = None
    notices_per_day: int | None = None
    installed_at: float | None = None
    known: bool = False


@dataclass(frozen=True, slots=True)
class InstalledDevice:
    """A registered device, for the "never reported since installed" check."""

    tenant: str | None
    device_id: str
    installed_at: float | None
    product: str | None


class CustomerRegistry:
    """(tenant, device) → customer lookups; unknown devices get the defaults.

    ``tenant`` is the deployment's tenant, for a file that names none; with neither, a device
    is found under any tenant (a registry checked on its own, ``forewarn rules check``).
    """

    def __init__(self, data: _RegistryFile | None = None, tenant: str | None = None) -> None:
        self._data = data or _RegistryFile()
        self._customers = {c.id: c for c in self._data.customers}
        self.tenant = self._data.tenant or tenant
        self._devices = {(spec.tenant or self.tenant, device_id): spec
                         for device_id, spec in self._data.devices.items()}
        self._cache: dict[tuple[str, str, str], DeviceMeta] = {}

    @property
    def customer_count(self) -> int:
        """How many customers the registry names."""
        return len(self._customers)

    @property
    def device_count(self) -> int:
        """How many devices the registry names."""
        return len(self._devices)

    def contact_channels(self) -> dict[str, str]:
        """Customer id → the channel its contact names (customers that name one)."""
        return {c.id: c.contact.channel for c in self._data.customers
                if c.contact.channel is not None}

    def installed(self) -> list[InstalledDevice]:
        """Every registered device with its tenant, install time and product."""
        return [InstalledDevice(tenant, device_id, spec.installed_at, spec.product)
                for (tenant, device_id), spec in self._devices.items()]

    def lookup(self, tenant: str, device_id: str, product: str) -> DeviceMeta:
        """The device's metadata (cached: called for every batch)."""
        key = (tenant, device_id, product)
        meta = self._cache.get(key)
        if meta is None:
            meta = self._cache[key] = self._build(tenant, device_id, product)
        return meta

    def tenant_of(self, device_id: str) -> str | None:
        """The tenant a registered device is bound to (None: unknown or not bound): its own
        ``tenant``, else the file's or the deployment's.

        >>> parse_registry("customers: [{id: kim}]\\ndevices: {hp-1: {customer: kim, "
        ...                "tenant: acme}}").tenant_of("hp-1")
        'acme'
        """
        device = self._data.devices.get(device_id)
        return (device.tenant or self.tenant) if device is not None else None

    def known_devices(self) -> dict[str, float | None]:
        """Every registered device and when it was installed (for never-reported checks)."""
        return {d: spec.installed_at for d, spec in self._data.devices.items()}

    def _build(self, tenant: str, device_id: str, product: str) -> DeviceMeta:
        defaults = self._data.defaults
        device = self._devices.get((tenant, device_id)) or self._devices.get((None, device_id))
        customer = self._customers.get(device.customer) if device else None
        if device is None or customer is None:
            return DeviceMeta(
                tenant=tenant, device_id=device_id, product=product,
                customer_id=f"{tenant}/{device_id}",
                tier=defaults.tier, timezone=defaults.timezone, language=defaults.language,
                firmware=device.firmware if device else "", quiet_hours=defaults.quiet_hours,
                model=device.model if device else "", batch=device.batch if device else "",
                region=device.region if device else "",
                notices_per_day=defaults.notices_per_day,
                installed_at=device.installed_at if device else None, known=device is not None,
            )
        return DeviceMeta(
            tenant=tenant, device_id=device_id, product=device.product or product,
            customer_id=customer.id, customer_name=customer.name,
            tier=customer.tier or defaults.tier, timezone=customer.timezone or defaults.timezone,
            language=customer.language or defaults.language, firmware=device.firmware,
            contact=customer.contact, quiet_hours=customer.quiet_hours or defaults.quiet_hours,
            notices_per_day=(customer.notices_per_day if customer.notices_per_day is not None
                             else defaults.notices_per_day),
            installed_at=device.installed_at, known=True,
            model=device.model, batch=device.batch, region=device.region,
        )


def parse_registry(text: str, source: str = "<customers>",
                   tenant: str | None = None) -> CustomerRegistry:
    """Validate registry YAML; raise :class:`RuleFileError` naming where it is wrong."""
    from rules.model import describe_errors  # the shared file/line/key error wording

    try:
        data = yaml.safe_load(text) or {}
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise RuleFileError(f"{source}: not valid YAML: {exc}") from exc
    try:
        parsed = _RegistryFile.model_validate(data)
    except ValidationError as exc:
        raise RuleFileError(describe_errors(exc, root, source)) from exc
    return _checked(parsed, source, tenant)


def _checked(parsed: _RegistryFile, source: str, tenant: str | None) -> CustomerRegistry:
    unknown = sorted({d.customer for d in parsed.devices.values()}
                     - {c.id for c in parsed.customers})
    if unknown:
        raise RuleFileError(f"{source}: devices name unknown customers: {', '.join(unknown)}")
    return CustomerRegistry(parsed, tenant)


def registry_from_dict(data: Mapping[str, Any], source: str = "<customers>",
                       tenant: str | None = None) -> CustomerRegistry:
    """A registry from data already read (what the YAML file holds): a simulated fleet's, a
    test's. Raises :class:`RuleFileError` naming the key that is wrong.

    >>> registry_from_dict({"customers": [{"id": "kim"}],
    ...                     "devices": {"hp-1": {"customer": "kim", "batch": "B17"}}}
    ...                    ).lookup("t", "hp-1", "heat_pump").batch
    'B17'
    """
    try:
        parsed = _RegistryFile.model_validate(data)
    except ValidationError as exc:
        raise RuleFileError(f"{source}: {exc}") from exc
    return _checked(parsed, source, tenant)


def load_registry(path: Path | None, tenant: str | None = None) -> CustomerRegistry:
    """Read a registry file; ``None`` gives the empty registry (defaults for every device).

    ``tenant``: the deployment's tenant, for devices whose file names none.
    """
    if path is None:
        return CustomerRegistry(tenant=tenant)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RuleFileError(f"cannot read customer registry {path}: {exc}") from exc
    return parse_registry(text, source=str(path), tenant=tenant)
