"""The demo channel: readable notices on the terminal and one JSON line each in a file.

>>> import asyncio, tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "notices.jsonl"
>>> channel = TerminalNotifier(path, echo=False)
>>> asyncio.run(channel.send(Notice("k1", "customer", "acme", "hp-1", 1, "Hi", "Body")))
>>> path.read_text().count("\\n")
1
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.panel import Panel

from rules.errors import NotifyError
from rules.notifiers.base import Notice

__all__ = ["TerminalNotifier"]


class TerminalNotifier:
    """Prints each notice as a panel and appends it to a JSONL file."""

    name = "terminal"

    def __init__(self, jsonl_path: Path, echo: bool = True, console: Console | None = None) -> None:
        self.jsonl_path = jsonl_path
        self.echo = echo
        self.console = console or Console()
        jsonl_path.parent.mkdir(parents=True, exist_ok=True)

    async def send(self, notice: Notice) -> None:
        """Append to the file (and print, when echoing)."""
        try:
            with self.jsonl_path.open("a", encoding="utf-8") as out:
                out.write(json.dumps(asdict(notice), ensure_ascii=False) + "\n")
        except OSError as exc:
            raise NotifyError(f"cannot write {self.jsonl_path}: {exc}", retryable=True) from exc
        if self.echo:
            who = "to customer" if notice.audience == "customer" else "to support team"
            style = "green" if notice.audience == "customer" else "yellow"
            self.console.print(Panel(notice.body, title=f"{notice.subject} ({who})",
                                     border_style=style, expand=False))
