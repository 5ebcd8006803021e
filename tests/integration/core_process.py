"""``forewarn core`` (direct MQTT engine) as a subprocess, for the tests that run, kill and
scrape it: over a configuration it writes for a broker and a tenant, or over the test's own file.

    core = CoreProcess(tmp_path, broker, tenant, extra_core="metrics_port = 9300\\n")
    core.create_session()          # telemetry waits for core from now on, even before it runs
    core.start()
    wait_for(lambda: ..., 60, "what", core)
    core.stop()                    # SIGTERM; returns the exit code

    core = CoreProcess(tmp_path, config=path, core_args=["--quiet-notices"])
    core.start()
    assert core.wait_for_line("subscribed to", 120), core.log_tail()
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from prometheus_client.parser import text_string_to_metric_families

from core.store.embedded import EmbeddedStore
from tests.integration.nats.fleet import SINGLE_SERIES_DETECTOR_TOML
from tests.servers.mosquitto import Mosquitto

__all__ = ["CoreProcess", "scrape", "wait_for"]

_ROOT = Path(__file__).resolve().parents[2]
RULES = """\
rules:
  - name: level_jump
    product: heat_pump
    score_at_least: 0.5
    for: 0s
    severity: warning
    notify_customer: true
"""


class CoreProcess:
    """One configuration of ``forewarn core`` in ``workdir``; each start is a new process, its
    output in a log of its own (``logs``; ``lines`` and ``log_tail`` read the current one).

    Without ``config`` it writes one: ``broker`` and ``tenant``, the embedded store, the cases
    and the state in ``workdir`` (the paths below), a one-rule set, ``extra_core`` lines in
    ``[core]`` and ``extra`` sections at the end. ``args`` go before ``--config``,
    ``core_args`` after ``core``. The environment
    is the test's without ``FOREWARN_*``: only the file configures core.
    """

    def __init__(self, workdir: Path, broker: Mosquitto | None = None, tenant: str = "",
                 extra_core: str = "", *, extra: str = "", config: Path | None = None,
                 args: Sequence[str] = ("-v",), core_args: Sequence[str] = ()) -> None:
        self.workdir = workdir
        self.tenant = tenant
        self.args, self.core_args = list(args), list(core_args)
        self.client_id = f"core-{uuid.uuid4().hex[:8]}"
        self.subscription = f"forewarn/v1/{tenant}/+/telemetry"
        self.store_db = workdir / "telemetry.sqlite"
        self.cases_db = workdir / "cases.sqlite"
        self.state_dir = workdir / "state"
        self.notices = workdir / "notices.jsonl"
        self.logs: list[Path] = []
        self.process: subprocess.Popen[bytes] | None = None
        self._broker = broker
        if config is not None:
            self.config = config
            return
        if broker is None:
            raise ValueError("CoreProcess needs a broker to write a configuration for")
        self.config = workdir / "forewarn.toml"
        (workdir / "rules.yaml").write_text(RULES)
        self.config.write_text(
            f'tenant = "{tenant}"\n'
            "[broker]\nembedded = false\n"
            f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
            f'client_id = "{self.client_id}"\nsubscription = "{self.subscription}"\n'
            f'[core]\nstate_dir = "{self.state_dir}"\n'
            f'limits_file = ""\n{extra_core}'
            f'[store]\npath = "{self.store_db}"\n'
            f'[cases]\nurl = "sqlite:///{self.cases_db}"\n'
            f'rules_file = "{workdir / "rules.yaml"}"\nnotices_jsonl = "{self.notices}"\n'
            + SINGLE_SERIES_DETECTOR_TOML + extra)

    @property
    def broker(self) -> Mosquitto:
        """The broker the written configuration names."""
        if self._broker is None:
            raise AttributeError("this core runs the test's own configuration file")
        return self._broker

    def create_session(self) -> None:
        """Open core's persistent session as core would, so telemetry waits for it."""
        client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                             client_id=self.client_id, protocol=mqtt.MQTTv5)
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        subscribed = threading.Event()
        client.on_subscribe = lambda *_args: subscribed.set()
        client.connect(self.broker.host, self.broker.port, clean_start=False, properties=props)
        client.loop_start()
        try:
            client.subscribe(self.subscription, qos=1)
            assert subscribed.wait(10.0), "mosquitto did not acknowledge the subscription"
        finally:
            client.disconnect()
            client.loop_stop()

    def start(self) -> None:
        """Start ``forewarn ARGS --config FILE core CORE_ARGS``; its output goes to a log of
        its own."""
        log = self.workdir / f"core-{len(self.logs)}.log"
        self.logs.append(log)
        env = {k: v for k, v in os.environ.items() if not k.startswith("FOREWARN_")}
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "forewarn.cli", *self.args, "--config", str(self.config),
                 "core", *self.core_args], cwd=self.workdir,
                env={**env, "PYTHONPATH": str(_ROOT)}, stdout=out, stderr=subprocess.STDOUT)

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the current process's output."""
        return self.logs[-1].read_text()[-chars:] if self.logs else ""

    @property
    def lines(self) -> list[str]:
        """The current process's output, line by line."""
        return self.logs[-1].read_text().splitlines() if self.logs else []

    def wait_for_line(self, text: str, timeout_s: float) -> bool:
        """Poll until a line containing ``text`` was printed (False: the deadline, or the
        process exited without printing it)."""
        deadline = time.monotonic() + timeout_s
        while not any(text in line for line in self.lines):
            if time.monotonic() > deadline or (
                    self.process is not None and self.process.poll() is not None):
                return any(text in line for line in self.lines)
            time.sleep(0.1)
        return True

    def kill(self) -> None:
        """SIGKILL, as a crash."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM (unless it already exited); the exit code. Killed after ``timeout_s``."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def close(self) -> None:
        """Kill a process still running (a failed test)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stored(self) -> int:
        """Samples of the tenant in core's store."""
        if not self.store_db.exists():
            return 0
        store = EmbeddedStore(self.store_db)
        try:
            return store.count_samples(self.tenant)
        finally:
            store.close()


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str,
             core: CoreProcess | None = None) -> None:
    """Poll ``predicate`` until true; fail with core's log if it exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        process = core.process if core is not None else None
        tail = core.log_tail() if core is not None else ""
        if process is not None and process.poll() is not None:
            raise AssertionError(f"core exited ({process.returncode}) waiting for {what}:\n"
                                 f"{tail}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{tail}")
        time.sleep(0.2)


def scrape(port: int) -> dict[str, float] | None:
    """Every sample as ``name{labels}`` → value; None while nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            text = answer.read().decode()
    except OSError:  # refused, or no answer in time (a worker busy compiling its kernels)
        return None
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def db_rows(db: Path, query: str, *args: object) -> list[tuple[object, ...]]:
    """Rows of ``query`` on the SQLite file a core process writes; none until core has made
    the file or the table."""
    if not db.exists():
        return []
    conn = sqlite3.connect(db, timeout=10)
    try:
        return list(conn.execute(query, args))
    except sqlite3.OperationalError:
        return []  # core has not created the table yet
    finally:
        conn.close()
