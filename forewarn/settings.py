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

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from core.config import CoreConfig, MqttConfig
from core.detect.config import DetectorConfig
from core.detect.peer_config import PeerConfig
from core.mapping.config import IngestConfig
from core.nats.config import NatsConfig
from core.store.config import StoreConfig
from edge.problems import problems
from forewarn.errors import ConfigError
from rules.cohorts import Dimension
from rules.feedback import FeedbackPolicy
from rules.incidents import CustomerPolicy, IncidentPolicy

__all__ = [
    "SHIPPED_CONFIG",
    "AppriseSettings",
    "BrokerSettings",
    "CasesSettings",
    "CoreSettings",
    "CustomersSettings",
    "EmailSettings",
    "FleetSettings",
    "NotifySettings",
    "RulesSettings",
    "ServeSettings",
    "Settings",
    "StoreSettings",
    "TomlFileSettings",
    "WebhookSettings",
    "load_settings",
]

DEFAULT_CONFIG_FILE = Path("forewarn.toml")
#: the configuration shipped beside the code (limits, every product's rules): the defaults, so
#: a minimal configuration file works from any directory
SHIPPED_CONFIG = Path(__file__).resolve().parents[1] / "config"


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
    #: product limits (product → field → lo/hi); the shipped config/limits.yaml by default (no
    #: limits when forewarn was installed without it); a configured file must exist; "": none
    limits_file: Path | None = SHIPPED_CONFIG / "limits.yaml"

    @field_validator("limits_file", mode="before")
    @classmethod
    def _no_limits(cls, value: Any) -> Any:
        return None if value == "" else value
    #: mqtt engine: where the detector and dedup state is saved (core-state.npz and the dedup
    #: journal), so a restart keeps learning (docs/scaling.md)
    state_dir: Path = Path("var/state")
    #: mqtt engine: seconds between state snapshots (also saved at SIGTERM)
    snapshot_interval_s: float = Field(default=300.0, gt=0)
    #: port of core's Prometheus ``/metrics`` (0: off); with the nats engine the supervisor
    #: serves here and worker i on metrics_port + 1 + i
    metrics_port: int = Field(default=0, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"
    #: ``POST /api/v1/ingest/{mapping}`` of the direct engine on this port (0: off; docs/connect.md)
    ingest_http_port: int = Field(default=0, ge=0, le=65535)
    ingest_http_host: str = "127.0.0.1"
    #: a larger body is refused with 413 before it is read
    ingest_http_max_body_bytes: int = Field(default=1 << 20, ge=1, le=64 << 20)


#: ``[store]``: which time-series store and its settings (see core/store/config.py)
StoreSettings = StoreConfig


class CasesSettings(BaseModel):
    """The case and outbox database, and the rules that open cases."""

    model_config = ConfigDict(extra="forbid")

    url: str = "sqlite:///var/cases.sqlite"
    #: one rules file (older key, still read): its rules join those of ``[rules]``
    rules_file: Path | None = None
    notices_jsonl: Path = Path("var/notices.jsonl")


class RulesSettings(BaseModel):
    """``[rules]``: every product's rules at once; each rule applies to its ``product`` only."""

    model_config = ConfigDict(extra="forbid")

    #: every ``*.yaml`` of this folder; with neither ``dir``, ``files`` nor ``[cases]
    #: rules_file`` set, the shipped config/rules (every simulated product)
    dir: Path | None = None
    #: rules files, besides (or instead of) ``dir``
    files: tuple[Path, ...] = ()
    #: a false alarm raises its rule's alarm level for the device by this much (issue 20)
    feedback_step: float = Field(default=0.05, ge=0.0, le=0.2)
    #: a device's raise (its own plus its product's) never exceeds this
    feedback_max_raise: float = Field(default=0.10, ge=0.0, le=0.3)
    #: a raise ends by itself this many days after the false alarm
    feedback_expiry_days: float = Field(default=30.0, gt=0.0)
    #: this many devices of a product with a raise of a rule → the product is raised too
    feedback_product_devices: int = Field(default=3, ge=1)
    #: false alarms of a rule on a device at about the same time of the week learn a weekly
    #: quiet window this many hours long (0: never); at most 24
    feedback_window_hours: float = Field(default=8.0, ge=0.0, le=24.0)
    #: this many such false alarms (within ``feedback_window_slack_hours`` in the week) …
    feedback_window_repeats: int = Field(default=2, ge=1)
    feedback_window_slack_hours: float = Field(default=3.0, ge=0.0, le=12.0)
    #: … and at most this many windows per device and rule
    feedback_max_windows: int = Field(default=2, ge=0, le=7)
    #: a window whose pattern comes back while it is quiet is renewed (it ends
    #: ``feedback_expiry_days`` after that), but ends at the latest this many days after it was
    #: learned (0: never renewed)
    feedback_window_renew_days: float = Field(default=180.0, ge=0.0, le=365.0)
    #: the same for a device's raise that keeps holding back what the rule's own level would
    #: fire on (0: never renewed)
    feedback_raise_renew_days: float = Field(default=180.0, ge=0.0, le=365.0)

    def feedback(self) -> FeedbackPolicy:
        """How far false alarms may loosen rules (``rules.feedback``)."""
        return FeedbackPolicy(step=self.feedback_step, max_raise=self.feedback_max_raise,
                              expiry_days=self.feedback_expiry_days,
                              product_devices=self.feedback_product_devices,
                              window_h=self.feedback_window_hours,
                              window_repeats=self.feedback_window_repeats,
                              window_slack_h=self.feedback_window_slack_hours,
                              max_windows=self.feedback_max_windows,
                              window_renew_days=self.feedback_window_renew_days,
                              raise_renew_days=self.feedback_raise_renew_days)


class IncidentsSettings(BaseModel):
    """``[incidents]``: many devices of one cohort with cases of one rule at once are one fleet
    incident, told to the team once and to the customers in one message (``rules.incidents``)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    #: this many devices of one cohort opening cases of one rule within ``window_h``…
    min_devices: int = Field(default=3, ge=2)
    #: …that are also at least this share of the cohort's known devices
    min_share: float = Field(default=0.0, ge=0.0, le=1.0)
    #: …and at least this many times the share of the product's other devices with such cases
    min_lift: float = Field(default=3.0, ge=1.0)
    #: a cohort of more than this share of the product's devices is the product itself
    max_cohort_share: float = Field(default=0.8, gt=0.0, le=1.0)
    window_h: float = Field(default=24.0, gt=0.0)
    #: the cohorts compared, in this order (``rules.cohorts``)
    dimensions: tuple[Dimension, ...] = ("firmware", "batch", "model", "region")
    #: "message": one coordinated message per affected device; "hold": none until a person
    #: decides (``forewarn incidents decide``)
    customers: CustomerPolicy = "message"
    #: products and rules whose incidents hold customer notices whatever ``customers`` says
    hold_products: tuple[str, ...] = ()
    hold_rules: tuple[str, ...] = ()
    #: incidents over cohorts of these dimensions hold customer notices (a region moving
    #: together is most often the weather: a person decides)
    hold_dimensions: tuple[Dimension, ...] = ("region",)
    #: detector events that flag a device unlike its peers: this many of one cohort flagged
    #: within the window open its incident before their cases (empty: cases only)
    flag_detectors: tuple[str, ...] = ("peer",)
    #: cases of devices gone silent or offline make incidents only of cohorts of at most this
    #: share of the product (a region, a batch): outages strike wide cohorts by chance
    offline_max_cohort_share: float = Field(default=0.3, gt=0.0, le=1.0)
    #: fewer flagged devices than ``min_devices`` (at least ``few_flags_min_devices``, on one
    #: field) open the incident of a cohort of these dimensions when so many are improbable
    #: (at most ``few_flags_alpha``) at the rate the product's other devices were flagged over
    #: the past ``few_flags_history_h`` (``rules.flag_rate``; [] : never)
    few_flags_dimensions: tuple[Dimension, ...] = ("batch",)
    few_flags_min_devices: int = Field(default=2, ge=2)
    few_flags_alpha: float = Field(default=0.02, gt=0.0, le=1.0)
    few_flags_history_h: float = Field(default=168.0, gt=0.0)

    def policy(self) -> IncidentPolicy:
        """The incident policy these keys describe."""
        return IncidentPolicy(enabled=self.enabled, min_devices=self.min_devices,
                              min_share=self.min_share, min_lift=self.min_lift,
                              max_cohort_share=self.max_cohort_share,
                              window_s=self.window_h * 3600.0,
                              dimensions=self.dimensions, customers=self.customers,
                              hold_products=self.hold_products, hold_rules=self.hold_rules,
                              hold_dimensions=self.hold_dimensions,
                              flag_detectors=self.flag_detectors,
                              offline_max_cohort_share=self.offline_max_cohort_share,
                              few_flags_dimensions=self.few_flags_dimensions,
                              few_flags_min_devices=self.few_flags_min_devices,
                              few_flags_alpha=self.few_flags_alpha,
                              few_flags_history_s=self.few_flags_history_h * 3600.0)


class CustomersSettings(BaseModel):
    """``[customers]``: the registry of who owns which device (config/customers.example.yaml)."""

    model_config = ConfigDict(extra="forbid")

    #: the registry file; None: every device is an unknown customer of its own (English, UTC)
    file: Path | None = None


class EmailSettings(BaseModel):
    """``[notify.email]``: the SMTP server that sends e-mail notices."""

    model_config = ConfigDict(extra="forbid")

    host: str
    #: default 587, or 465 with ``tls = "implicit"``
    port: int = Field(default=587, ge=1, le=65535)
    sender: str = Field(min_length=3)
    username: str = ""
    password: str = ""
    #: a file holding the password (first line), instead of ``password``
    password_file: Path | None = None
    #: "starttls" (port 587), "implicit" (TLS from the first byte, port 465) or "none" (no
    #: encryption: a relay on this machine; a login is then refused)
    tls: Literal["starttls", "implicit", "none"] = "starttls"
    #: a CA certificate (PEM) to verify the server with, for a private CA (default: the
    #: system's trusted CAs)
    ca_file: Path | None = None
    #: where team notices sent by e-mail go (the customers' come from the registry)
    team_address: str = ""
    timeout_s: float = Field(default=10.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _implicit_port(cls, data: Any) -> Any:
        # implicit TLS listens on 465 (submissions); STARTTLS on 587 (submission)
        if isinstance(data, dict) and data.get("tls") == "implicit" and "port" not in data:
            data = {**data, "port": 465}
        return data

    @model_validator(mode="after")
    def _one_password(self) -> EmailSettings:
        if self.password and self.password_file is not None:
            raise ValueError("give either 'password' or 'password_file', not both")
        if self.username and self.tls == "none":
            raise ValueError('SMTP login refused without TLS: set tls = "starttls" or '
                             '"implicit" (or no username for a local relay)')
        return self


class WebhookSettings(BaseModel):
    """``[notify.webhook]``: HMAC-signed JSON posts (docs/helpdesk.md)."""

    model_config = ConfigDict(extra="forbid")

    #: where notices go unless a customer's contact names its own URL
    url: str = ""
    secret: str = ""
    #: a file holding the secret (first line), instead of ``secret``
    secret_file: Path | None = None
    timeout_s: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _one_secret(self) -> WebhookSettings:
        if bool(self.secret) == (self.secret_file is not None):
            raise ValueError("give one of 'secret' or 'secret_file'")
        return self


class AppriseSettings(BaseModel):
    """``[notify.apprise]``: Apprise URLs (chat, SMS gateways…) for notices without their own."""

    model_config = ConfigDict(extra="forbid")

    urls: tuple[str, ...] = ()


class NotifySettings(BaseModel):
    """``[notify]``: the channels notices go out on; "terminal" (var/notices.jsonl) always is."""

    model_config = ConfigDict(extra="forbid")

    #: the channel of team notices (cases opened, escalated, resolved), e.g. "webhook" for a
    #: helpdesk or "email" to ``[notify.email] team_address``
    team: str = "terminal"
    #: the channel of customers whose registry contact names none
    customers: str = "terminal"
    email: EmailSettings | None = None
    webhook: WebhookSettings | None = None
    apprise: AppriseSettings | None = None

    def channels(self) -> tuple[str, ...]:
        """The configured channel names."""
        return ("terminal", *(name for name in ("email", "webhook", "apprise")
                              if getattr(self, name) is not None))


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
    #: a request body larger than this is refused unread with 413
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    #: where customers reach the console from outside (e.g. "https://support.example.com"):
    #: customer notices carry a link to the case's status page, ``<public_url>/s/<token>``
    #: ("" : no link)
    public_url: str = ""
    #: signs the status-page links; "" : derived from session_secret (one of them must be
    #: set for links: a secret made at start would break every link on a restart)
    status_secret: str = ""
    #: a status page keeps working this many days after its case resolved
    status_grace_days: float = Field(default=7.0, ge=0)
    #: answers a customer may post on one status page per hour (then 429)
    status_answers_per_hour: int = Field(default=20, ge=1)


class FleetSettings(BaseModel):
    """``[fleet]``: how ``forewarn fleet``'s simulated devices log in to the broker."""

    model_config = ConfigDict(extra="forbid")

    #: one ``device_id password`` pair per line (what ``forewarn devices add`` prints):
    #: each simulated device logs in as itself (username = device id)
    credentials_file: Path | None = None
    #: one password for every device (a load-test broker); a device in credentials_file
    #: uses its own
    password: str | None = None
    #: the devices' disk queues ("": a temporary directory, removed at the end)
    queue_dir: Path | None = None


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
    #: ``[peer]``: each device against its peers, each cohort against its past (issue 20)
    peer: PeerConfig = Field(default_factory=PeerConfig)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    #: ``[nats]``: the JetStream stream and its workers (``forewarn core --engine nats``)
    nats: NatsConfig = Field(default_factory=NatsConfig)
    rules: RulesSettings = Field(default_factory=RulesSettings)
    customers: CustomersSettings = Field(default_factory=CustomersSettings)
    #: ``[incidents]``: fleet incidents over cohorts (docs/incidents.md)
    incidents: IncidentsSettings = Field(default_factory=IncidentsSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    #: ``[fleet]``: the simulated fleet's credentials (``forewarn fleet``)
    fleet: FleetSettings = Field(default_factory=FleetSettings)
    #: ``[[ingest.mapping]]``: fleets that publish their own topics and payloads (docs/connect.md)
    ingest: IngestConfig = Field(default_factory=IngestConfig)

    def rule_paths(self) -> list[Path]:
        """The rules files the service loads: ``[rules]`` and ``[cases] rules_file``, or the
        shipped ones of every product when none is configured."""
        paths = list(self.rules.files)
        if self.cases.rules_file is not None:
            paths.append(self.cases.rules_file)
        rules_dir = self.rules.dir
        if rules_dir is None and not paths:
            rules_dir = SHIPPED_CONFIG / "rules"
        if rules_dir is not None:
            paths.extend(sorted(rules_dir.glob("*.yaml")))
        return paths

    def input_files(self) -> list[tuple[str, Path]]:
        """(key, path) of every file the configuration names, for the check at start."""
        named: list[tuple[str, Path | None]] = [
            ("[core] limits_file", self.core.limits_file),
            ("[cases] rules_file", self.cases.rules_file),
            ("[rules] dir", self.rules.dir),
            *(("[rules] files", f) for f in self.rules.files),
            ("[customers] file", self.customers.file),
        ]
        if self.notify.email is not None:
            named += [("[notify.email] password_file", self.notify.email.password_file),
                      ("[notify.email] ca_file", self.notify.email.ca_file)]
        if self.notify.webhook is not None:
            named.append(("[notify.webhook] secret_file", self.notify.webhook.secret_file))
        return [(key, path) for key, path in named if path is not None]

    @model_validator(mode="after")
    def _port_zero_needs_the_embedded_broker(self) -> Settings:
        if self.mqtt.port == 0 and not self.broker.embedded:
            raise ValueError("mqtt.port = 0 (any free port) works only with the embedded "
                             "broker ([broker] embedded = true): give the external broker's "
                             "port")
        return self


def load_settings(path: Path | str | None, env: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``path`` (or ./forewarn.toml if present) and the environment.

    Relative file names in the file (limits, rules, customers, secrets) are relative to the
    file's folder, so the service runs the same from any working directory. Raises
    :class:`ConfigError` naming the file and key when something is wrong, and naming the key
    of a configured file that does not exist.
    """
    path = Path(path) if isinstance(path, str) else path
    if path is None and DEFAULT_CONFIG_FILE.exists():
        path = DEFAULT_CONFIG_FILE
    if path is not None and not path.exists():
        raise ConfigError(f"configuration file {path} does not exist")
    # a copy: the process's own FOREWARN_* variables are taken out of os.environ below
    environ = dict(os.environ) if env is None else env
    saved = {k: v for k, v in os.environ.items() if k.startswith("FOREWARN_")}

    config_file = path

    class _Loaded(Settings):
        toml_file: ClassVar[Path | None] = config_file

    try:
        # pydantic-settings reads os.environ; present exactly the mapping we were given
        for key in saved:
            del os.environ[key]
        os.environ.update({k: v for k, v in environ.items() if k.startswith("FOREWARN_")})
        loaded: Any = _Loaded()
    except ValidationError as exc:
        source = path if path is not None else "the environment"
        raise ConfigError(f"{source}: {problems(exc, model=Settings)[0]}") from exc
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read configuration {path}: {exc}") from exc
    finally:
        for key in [k for k in os.environ if k.startswith("FOREWARN_")]:
            del os.environ[key]
        os.environ.update(saved)
    settings = Settings.model_validate(loaded.model_dump())
    if path is not None:
        settings = _relative_to(settings, path.resolve().parent)
    for key, file in settings.input_files():
        shipped = file == SHIPPED_CONFIG / "limits.yaml"
        if not file.exists() and not shipped:
            source = path if path is not None else "the environment"
            raise ConfigError(f"{source}: {key}: {file} does not exist")
    if settings.rules.dir is not None and not any(settings.rules.dir.glob("*.yaml")):
        raise ConfigError(f"[rules] dir: no *.yaml rules files in {settings.rules.dir}")
    if not settings.rule_paths():
        raise ConfigError("no rules files: set [rules] dir (or files) to the folder of your "
                          "rules (*.yaml)")
    return settings


def _relative_to(settings: Settings, base: Path) -> Settings:
    """``settings`` with every relative input file name taken relative to ``base``."""
    def at(file: Path | None) -> Path | None:
        return file if file is None or file.is_absolute() else base / file

    data = settings.model_dump()
    data["core"]["limits_file"] = at(settings.core.limits_file)
    data["cases"]["rules_file"] = at(settings.cases.rules_file)
    data["rules"] = {"dir": at(settings.rules.dir),
                     "files": [at(f) for f in settings.rules.files]}
    data["customers"]["file"] = at(settings.customers.file)
    data["fleet"]["credentials_file"] = at(settings.fleet.credentials_file)
    data["fleet"]["queue_dir"] = at(settings.fleet.queue_dir)
    if settings.notify.email is not None:
        data["notify"]["email"]["password_file"] = at(settings.notify.email.password_file)
        data["notify"]["email"]["ca_file"] = at(settings.notify.email.ca_file)
    if settings.notify.webhook is not None:
        data["notify"]["webhook"]["secret_file"] = at(settings.notify.webhook.secret_file)
    return Settings.model_validate(data)
