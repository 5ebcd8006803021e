"""One ``[[ingest.mapping]]``: which topics, what format, where tenant, device, time, fields are.

>>> m = MappingConfig(name="acme-json", topic="acme/+site/+device/state", tenant="acme",
...                   product="heat_pump", time_key="ts", fields=["temp", "pump.rpm"],
...                   rename={"pump.rpm": "pump_rpm"}, scale={"temp": 0.1})
>>> m.pattern.subscription, m.field_names()
('acme/+/+/state', ('temp', 'pump_rpm'))
>>> MappingConfig(name="x", topic="a/+site/state", tenant="acme")
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for MappingConfig
...
"""

from __future__ import annotations

from functools import cached_property
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.mapping.topic import TopicPattern
from edge.names import NAME_PATTERN, NAME_RE
from edge.schema import MAX_FIELDS

__all__ = ["IngestConfig", "MappingConfig"]


class MappingConfig(BaseModel):
    """A declared mapping from a fleet's own topics and payloads to forewarn's batches."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: how commands and dead letters name the mapping
    name: str = Field(pattern=NAME_PATTERN)
    #: MQTT topic filter with named wildcards; ``+device`` gives the device id, ``+tenant``
    #: the tenant (unless ``tenant`` is set)
    topic: str = Field(min_length=1, max_length=256)
    #: ``json``: one JSON object per reading, or an array of them; ``influx``: InfluxDB
    #: line protocol (measurement,tags fields time), one reading per line; ``csv``: CSV
    #: lines, one reading per line; ``sparkplug``: Sparkplug B (births, data with aliases,
    #: deaths; the device is the Sparkplug device id, or the node id for node metrics)
    format: Literal["json", "influx", "csv", "sparkplug"] = "json"
    #: a fixed tenant; None: the topic's ``+tenant`` wildcard gives it
    tenant: str | None = Field(default=None, pattern=NAME_PATTERN)
    product: str = Field(default="generic", pattern=NAME_PATTERN)
    #: JSON: the key (or dotted path) of the reading's time; None: the time it arrived
    time_key: str | None = Field(default=None, min_length=1, max_length=128)
    #: how the time is written: ``auto`` (a number: epoch seconds, or milliseconds when above
    #: 1e11; a string: ISO 8601), ``s``, ``ms``, ``us``, ``ns`` or ``iso``. Line protocol's
    #: time is nanoseconds unless set to ``s``/``ms``/``us``
    time_unit: Literal["auto", "s", "ms", "us", "ns", "iso"] = "auto"
    #: JSON keys (dotted paths into nested objects: ``pump.rpm``) that are fields; None:
    #: every numeric top-level key but the time key
    fields: list[str] | None = Field(default=None, max_length=MAX_FIELDS)
    #: a key or path → the field name forewarn uses
    rename: dict[str, str] = Field(default_factory=dict)
    #: per field (its forewarn name): value × scale + offset
    scale: dict[str, float] = Field(default_factory=dict)
    offset: dict[str, float] = Field(default_factory=dict)
    #: keys the mapping does not use: ``ignore`` them, or ``dead-letter`` the message
    unknown_keys: Literal["ignore", "dead-letter"] = "ignore"
    #: CSV: the column names, in order; None: the message's first line is a header
    columns: list[str] | None = Field(default=None, min_length=1, max_length=256)
    #: JSON: the key holding the device id, when the topic has no ``+device``
    device_key: str | None = Field(default=None, min_length=1, max_length=128)

    @model_validator(mode="after")
    def _consistent(self) -> MappingConfig:
        pattern = TopicPattern(self.topic)  # raises ValueError with the reason
        if ("device" not in pattern.names and self.device_key is None
                and self.format != "sparkplug"):
            raise ValueError(f"mapping {self.name}: the topic needs a '+device' level "
                             "(or set device_key)")
        if self.tenant is None and "tenant" not in pattern.names:
            raise ValueError(f"mapping {self.name}: set tenant, or name a '+tenant' level "
                             "in the topic")
        for key, name in self.rename.items():
            if not NAME_RE.fullmatch(name):
                raise ValueError(f"mapping {self.name}: rename {key!r} → {name!r}: "
                                 "not a field name")
        if self.fields is not None:
            names = self.field_names()
            bad = [n for n in names if not NAME_RE.fullmatch(n)]
            if bad:
                raise ValueError(f"mapping {self.name}: field {bad[0]!r} is not a field name "
                                 "(rename it)")
            if len(set(names)) != len(names):
                raise ValueError(f"mapping {self.name}: two fields share a name")
        return self

    @cached_property
    def pattern(self) -> TopicPattern:
        """The topic filter, parsed."""
        return TopicPattern(self.topic)

    def field_name(self, key: str) -> str:
        """The forewarn name of a JSON key or path."""
        return self.rename.get(key, key)

    def field_names(self) -> tuple[str, ...]:
        """The configured fields' forewarn names (empty when every numeric key is one)."""
        return tuple(self.field_name(k) for k in self.fields or ())


class IngestConfig(BaseModel):
    """``[ingest]``: what core ingests beside its native schema (``[[ingest.mapping]]``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mapping: list[MappingConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> IngestConfig:
        names = [m.name for m in self.mapping]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"two [[ingest.mapping]] are named {twice[0]!r}")
        return self

    def named(self, name: str) -> MappingConfig | None:
        """The mapping called ``name``, if there is one."""
        return next((m for m in self.mapping if m.name == name), None)
