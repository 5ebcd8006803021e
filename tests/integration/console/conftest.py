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
from core.events import DeviceStatus
from core.pipeline import CorePipeline
from core.store.embedded import EmbeddedStore
from firmware_sim.fleet import Fleet, FleetConfig
from forewarn.console import ConsoleContext
from forewarn.console.server import make_server
from rules.cases import CaseBook
from rules.db import CaseRow, connect
from rules.evaluate import RuleEvaluator
from rules.lifecycle import DeviceBook, DeviceLifecycle
from rules.model import load_rules
from rules.notifiers.terminal import TerminalNotifier
from rules.outbox import Outbox
from rules.pipeline import RulesPipeline

ROOT = Path(__file__).resolve().parents[3]
RULES = ROOT / "config" / "rules" / "heat_pump.yaml"
#: tenant → (devices, seed); acme streams last, so "now" is the end of acme's data
TENANTS = {"globex": (2, 5), "acme": (4, 3)}
#: a tenant with no fleet, for tests that add cases of their own (acme's queue stays as the
#: simulation left it for the tests that read it)
TESTS_OWN_TENANT = "initech"
#: a fleet keeps streaming this long after its first case opened
AFTER_OPEN_S = 2 * 3600.0
H = 3600.0


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
              for tenant in (*TENANTS, TESTS_OWN_TENANT) for role in ("viewer", "agent", "admin")}
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


@pytest.fixture(scope="session")
def rollout(console: ConsoleUnderTest) -> tuple[ConsoleUnderTest, float]:
    """acme's four heat pumps report 2.5 from their first case's day on; two move to 2.6 at the
    first case's opening (so cases fall on both sides); globex's two stay on 9.0.

    Once per session: the firmware view's API, CLI and browser tests read the same history
    (applied twice, the second round would read as moves back to 2.5)."""
    with Session(console.ctx.engine) as session:
        opened = sorted(session.scalars(select(CaseRow.opened_at).where(
            CaseRow.tenant == "acme", CaseRow.evidence_json != "{}")))
    assert opened, "the simulation opened no case for acme"
    move = opened[0]
    book = DeviceBook(console.ctx.engine)
    lifecycle = DeviceLifecycle(book, RuleEvaluator(()))
    start = move - 24 * H
    # their telemetry named the product (what the rules pipeline's observe step saves)
    book.save_last_seen({(tenant, f"hp-{i:04d}"): (start, "heat_pump")
                         for tenant, n in (("acme", 4), ("globex", 2)) for i in range(n)})
    for i in range(4):
        lifecycle.handle(DeviceStatus("acme", f"hp-{i:04d}", "online", start, firmware="2.5"))
    for i in range(2):
        # a status without a version in between is no move
        lifecycle.handle(DeviceStatus("acme", f"hp-{i:04d}", "online", move - H))
        lifecycle.handle(DeviceStatus("acme", f"hp-{i:04d}", "online", move, firmware="2.6"))
        lifecycle.handle(DeviceStatus("acme", f"hp-{i:04d}", "online", move + H, firmware="2.6"))
    for i in range(2):
        lifecycle.handle(DeviceStatus("globex", f"hp-{i:04d}", "online", start, firmware="9.0"))
    return console, move
