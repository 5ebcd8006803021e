"""A console on a free 127.0.0.1 port over cases that simulated faults really opened.

Two tenants' fleets (``acme``: four heat pumps, ``globex``: two; half of each develops a
refrigerant leak) stream in-process through core's pipeline (RobustZ, as the demo runs it) into an
embedded store, and through the rules pipeline into a case database; the outbox then delivers the
notices to a JSON-lines file. Each fleet stops a couple of simulated hours after its first case
opened, so that case is still open for the agent to acknowledge.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from core.detect import RobustZ
from core.pipeline import CorePipeline
from core.store.embedded import EmbeddedStore
from firmware_sim.fleet import Fleet, FleetConfig
from forewarn.console import ConsoleContext
from forewarn.console.server import make_server
from rules.cases import CaseBook
from rules.db import CaseRow, connect
from rules.model import load_rules
from rules.notifiers.terminal import TerminalNotifier
from rules.outbox import Outbox
from rules.pipeline import RulesPipeline

ROOT = Path(__file__).resolve().parents[3]
RULES = ROOT / "config" / "rules" / "heat_pump.yaml"
#: tenant → (devices, seed); acme streams last, so "now" is the end of acme's data
TENANTS = {"globex": (2, 5), "acme": (4, 3)}
#: a fleet keeps streaming this long after its first case opened
AFTER_OPEN_S = 2 * 3600.0


class _SimClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _open_case(engine: Engine, tenant: str) -> CaseRow | None:
    with Session(engine) as session:
        return session.scalar(select(CaseRow).where(CaseRow.tenant == tenant,
                                                    CaseRow.status == "open"))


async def _simulate(store: EmbeddedStore, engine: Engine, out: Path) -> float:
    clock = _SimClock()
    rules = RulesPipeline(load_rules(RULES), CaseBook(engine, channel="terminal", clock=clock))
    for tenant, (devices, seed) in TENANTS.items():
        fleet = Fleet(FleetConfig(
            devices=devices, seed=seed, tenant=tenant, horizon_s=72 * 3600.0,
            fault_fraction=0.5, fault_kinds=("refrigerant_leak",), onset_window=(0.5, 0.55),
            fault_ramp_s=12 * 3600.0))
        core = CorePipeline(RobustZ(warmup=1440), store)
        for delivery in fleet.deliveries(batch_s=600.0):
            clock.now = delivery.arrival
            scored = core.process(delivery.tenant, delivery.to_batch(validate=False))
            if scored is not None:
                rules.handle(scored)
            case = _open_case(engine, tenant)
            if case is not None and clock.now >= case.opened_at + AFTER_OPEN_S:
                break
    outbox = Outbox(engine, {"terminal": TerminalNotifier(out / "notices.jsonl", echo=False)},
                    clock=time.time)
    while await outbox.dispatch_once():
        pass
    return clock.now


@dataclass
class ConsoleUnderTest:
    """A running console: its URL, context, and a token per (tenant, role)."""

    url: str
    ctx: ConsoleContext
    tokens: dict[tuple[str, str], str]
    out: Path

    def client(self, tenant: str = "acme", role: str = "agent") -> httpx.Client:
        """An API client holding that tenant's token of that role (close it, or use ``with``)."""
        return httpx.Client(base_url=self.url, timeout=30.0, headers={
            "Authorization": f"Bearer {self.tokens[(tenant, role)]}"})

    def case_id(self, tenant: str, *status: str) -> int:
        """The first case of ``tenant`` the simulation opened in ``status`` (default: open or
        acknowledged)."""
        wanted = status or ("open", "acknowledged")
        with Session(self.ctx.engine) as session:
            found = session.scalar(select(CaseRow.id).where(
                CaseRow.tenant == tenant, CaseRow.status.in_(wanted),
                CaseRow.evidence_json != "{}").order_by(CaseRow.id))  # not the tests' own
        assert found is not None, f"the simulation opened no {wanted} case for {tenant}"
        return int(found)


@pytest.fixture(scope="session")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleUnderTest]:
    """The seeded console, served by uvicorn on a free port for the whole session."""
    out = tmp_path_factory.mktemp("console")
    store = EmbeddedStore(out / "telemetry.sqlite")
    engine = connect(f"sqlite:///{out / 'cases.sqlite'}")
    end = asyncio.run(_simulate(store, engine, out))
    ctx = ConsoleContext(engine=engine, store=store, rules_files=(RULES,), clock=lambda: end)
    tokens = {(tenant, role): ctx.tokens.create(tenant, role, f"{role} of {tenant}").token
              for tenant in TENANTS for role in ("viewer", "agent", "admin")}
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = make_server(ctx)  # what forewarn serve runs, on a socket bound here
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20.0
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the console did not start"
        time.sleep(0.02)
    try:
        yield ConsoleUnderTest(f"http://127.0.0.1:{port}", ctx, tokens, out)
    finally:
        server.should_exit = True
        thread.join(timeout=20.0)
        sock.close()
        store.close()
        engine.dispose()
