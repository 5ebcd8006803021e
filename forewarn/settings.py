"""forewarn's configuration: defaults → TOML file → ``FOREWARN_*`` environment variables.

Nested keys use ``__`` in the environment: ``FOREWARN_MQTT__PORT=1884`` sets ``[mqtt] port``.
``config/forewarn.example.toml`` documents every key (a test loads it so it cannot rot).

>>> settings = load_settings(None, env={})
>>> settings.mqtt.port, settings.broker.embedded
(1883, True)
>>> load_settings(None, env={"FOREWARN_MQTT__PORT": "1999"}).mqtt.port
1999
>>> detector = load_settings(None, env={"FOREWARN_DETECTOR__REGRESSION_HALF_Z": "4"}).detector
>>> detector.regression_half_z, detector.regression_weight     # the rest: the defaults
(4.0, 1.0)
>>> load_settings(None, env={"FOREWARN_NATS__URL": "nats://nats-1:4222"}).nats.url
'nats://nats-1:4222'
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from core.config import CoreConfig, MqttConfig
from core.detect.config import DetectorConfig
from core.nats.config import NatsConfig
from core.store.config import StoreConfig
from edge.problems import problems
from forewarn.errors import ConfigError

__all__ = [
    "BrokerSettings",
    "CasesSettings",
    "CoreSettings",
    "ServeSettings",
    "Settings",
    "StoreSettings",
    "TomlFileSettings",
    "load_settings",
]

DEFAULT_CONFIG_FILE = Path("forewarn.toml")


class BrokerSettings(BaseModel):
    """The MQTT broker: embedded (in-process amqtt, for the demo) or an external one."""

    model_config = ConfigDict(extra="forbid")

    #: start an in-process broker on mqtt.host/mqtt.port (port 0: any free port)
    embedded: bool = True


class CoreSettings(CoreConfig):
    """``[core]``: core's processing settings, and how ``forewarn core`` runs on this machine.

    The processing keys are core's own (:class:`core.config.CoreConfig`); the rest choose the
    engine and, for the NATS engine (``[nats]``), this machine's share of the partitions.
    """

    #: "mqtt": one process subscribed to the MQTT broker; "nats": supervised worker processes
    #: on the partitioned JetStream stream of ``[nats]`` (docs/scaling.md)
    engine: Literal["mqtt", "nats"] = "mqtt"
    #: worker processes on this machine (nats engine)
    workers: int = Field(default=2, ge=1, le=1024)
    #: the partitions this machine's workers own, e.g. "0-15" or "0-7,16-23"; "": all of them.
    #: Machines sharing one stream own disjoint slices that together cover every partition.
    owned_partitions: str = Field(default="", pattern=r"^(\d+(-\d+)?(,\d+(-\d+)?)*)?$")
    #: deliver notices from this machine; exactly one machine per case database should
    outbox: bool = True
    #: seconds between the rules' time-driven passes: silent devices, escalation, released
    #: silences
    tick_interval_s: float = Field(default=60.0, gt=0)


#: ``[store]``: which time-series store and its settings (see core/store/config.py)
StoreSettings = StoreConfig


class CasesSettings(BaseModel):
    """The case and outbox database, and the rules that open cases."""

    model_config = ConfigDict(extra="forbid")

    url: str = "sqlite:///var/cases.sqlite"
    rules_file: Path = Path("config/rules/heat_pump.yaml")
    notices_jsonl: Path = Path("var/notices.jsonl")


class ServeSettings(BaseModel):
    """The support console and REST API (``forewarn serve``)."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    #: signs the console's session cookies; empty: a random one per start (everyone logs in
    #: again after a restart)
    session_secret: str = ""
    session_max_age_s: int = Field(default=8 * 3600, gt=0)
    #: send session cookies only over HTTPS (set it behind a TLS proxy)
    secure_cookies: bool = False
    #: outbox channel that also gets agents' actions as team notices ("" : none), e.g.
    #: "webhook" for a helpdesk behind the signed webhook (docs/helpdesk.md)
    helpdesk_channel: str = ""
    #: the helpdesk's URL ("" : the channel's configured default)
    helpdesk_url: str = ""


class TomlFileSettings(BaseSettings):
    """Settings read from ``toml_file`` (set on a subclass) under the environment's overrides."""

    toml_file: ClassVar[Path | None] = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if cls.toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=cls.toml_file))
        return tuple(sources)


class Settings(TomlFileSettings):
    """Everything the services read at start-up."""

    model_config = SettingsConfigDict(
        env_prefix="FOREWARN_", env_nested_delimiter="__", extra="forbid"
    )

    tenant: str = "demo"
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    core: CoreSettings = Field(default_factory=CoreSettings)
    store: StoreConfig = Field(default_factory=StoreConfig)
    cases: CasesSettings = Field(default_factory=CasesSettings)
    #: the detector core runs; ``[detector]`` keys override ``DetectorConfig()``'s defaults
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    #: ``[nats]``: the JetStream stream and its workers (``forewarn core --engine nats``)
    nats: NatsConfig = Field(default_factory=NatsConfig)


def load_settings(path: Path | None, env: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``path`` (or ./forewarn.toml if present) and the environment.

    Raises :class:`ConfigError` naming the file and key when something is wrong.
    """
    if path is None and DEFAULT_CONFIG_FILE.exists():
        path = DEFAULT_CONFIG_FILE
    if path is not None and not path.exists():
        raise ConfigError(f"configuration file {path} does not exist")
    # a copy: the process's own FOREWARN_* variables are taken out of os.environ below
    environ = dict(os.environ) if env is None else env
    saved = {k: v for k, v in os.environ.items() if k.startswith("FOREWARN_")}

    class _Loaded(Settings):
        toml_file: ClassVar[Path | None] = path

    try:
        # pydantic-settings reads os.environ; present exactly the mapping we were given
        for key in saved:
            del os.environ[key]
        os.environ.update({k: v for k, v in environ.items() if k.startswith("FOREWARN_")})
        loaded: Any = _Loaded()
    except ValidationError as exc:
        source = path if path is not None else "the environment"
        raise ConfigError(f"{source}: {problems(exc)[0]}") from exc
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read configuration {path}: {exc}") from exc
    finally:
        for key in [k for k in os.environ if k.startswith("FOREWARN_")]:
            del os.environ[key]
        os.environ.update(saved)
    return Settings.model_validate(loaded.model_dump())
