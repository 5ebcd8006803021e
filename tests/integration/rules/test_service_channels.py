"""The NATS engine's outbox dispatcher (``forewarn.workers.dispatch_outbox``) delivers on every
channel the settings configure: a customer's Apprise contact and the team's signed webhook."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from core.events import ScoredBatch
from forewarn.service import Service
from forewarn.settings import load_settings
from forewarn.workers import dispatch_outbox
from tests.servers.webhook import WebhookReceiver

ROOT = Path(__file__).resolve().parents[3]


def test_the_nats_dispatcher_sends_on_every_configured_channel(tmp_path: Path) -> None:
    with WebhookReceiver() as customer_end, WebhookReceiver(secret=b"team") as helpdesk:
        (tmp_path / "customers.yaml").write_text(
            "customers:\n"
            "  - id: jane\n"
            "    contact: {channel: apprise, address: "
            f"'json://{customer_end.host}:{customer_end.port}/hook'}}\n"
            "devices:\n  hp-1: {customer: jane, product: heat_pump}\n")
        (tmp_path / "forewarn.toml").write_text(f"""\
tenant = "acme"
[cases]
url = "sqlite:///{tmp_path}/cases.sqlite"
notices_jsonl = "{tmp_path}/notices.jsonl"
[rules]
files = ["rules.yaml"]
[customers]
file = "customers.yaml"
[notify]
team = "webhook"
[notify.webhook]
url = "{helpdesk.url}"
secret = "team"
[notify.apprise]
urls = []
""")
        (tmp_path / "rules.yaml").write_text(
            "rules:\n  - name: hot\n    product: heat_pump\n    score_at_least: 0.8\n"
            "    for: 0s\n")
        settings = load_settings(tmp_path / "forewarn.toml")
        service = Service(settings)
        engine = service.connect_cases()
        rules = service.rules_pipeline(engine)
        n = 5
        rules.handle(ScoredBatch("acme", "hp-1", "heat_pump", ("temp",),
                                 1_700_000_000.0 + np.arange(n) * 60.0, np.full((n, 1), 90.0),
                                 np.full((n, 1), 0.95)))
        assert len(rules.opened) == 1
        engine.dispose()

        async def dispatch_until_delivered() -> None:
            stop = asyncio.Event()
            task = asyncio.create_task(dispatch_outbox(settings, stop, echo=False))
            for _ in range(300):
                if customer_end.delivered and helpdesk.delivered:
                    break
                await asyncio.sleep(0.1)
            stop.set()
            await task

        asyncio.run(dispatch_until_delivered())
        [customer] = customer_end.delivered.values()
        [team] = helpdesk.delivered.values()
        assert team["audience"] == "team" and team["device_id"] == "hp-1"
        assert helpdesk.bad_signatures == 0
        assert "title" in customer or "message" in customer  # Apprise's JSON notification
