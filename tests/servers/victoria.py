"""A throwaway VictoriaMetrics server for tests and benchmarks (Debian ``victoria-metrics``).

It binds 127.0.0.1 on a free port, keeps its data in a directory the caller owns, and can be
stopped and started again on the same port and data (the outage test does that). VictoriaMetrics
takes InfluxDB line protocol at ``/api/v2/write`` (metric ``{measurement}_{field}``, tags become
labels) and hands back what it stored through ``/api/v1/export``.

    with VictoriaMetrics(tmp_path) as vm:
        requests go to vm.url; vm.export('{tenant="acme"}') lists what landed
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from forewarn.ports import free_port
from tests.servers._process import stop_process

__all__ = ["VictoriaMetrics", "free_port", "victoria_metrics_binary"]


def victoria_metrics_binary() -> str | None:
    """Path of the ``victoria-metrics`` executable, or None when it is not installed."""
    return shutil.which("victoria-metrics") or (
        "/usr/bin/victoria-metrics" if Path("/usr/bin/victoria-metrics").exists() else None
    )


class VictoriaMetrics:
    """One VictoriaMetrics process: ``start()``, ``stop()``, ``start()`` again, ``close()``."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        binary = victoria_metrics_binary()
        if binary is None:
            raise RuntimeError("victoria-metrics not installed (apt-get install victoria-metrics)")
        self.binary = binary
        self.workdir = Path(workdir)
        self.data_dir = self.workdir / "vm-data"
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def __enter__(self) -> VictoriaMetrics:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self, timeout_s: float = 15.0) -> None:
        """Start the server and wait until it answers ``/health``."""
        if self.running:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self._log is None:
            self._log = (self.workdir / "victoria-metrics.log").open("ab")
        self._process = subprocess.Popen(
            [
                self.binary,
                f"-httpListenAddr=127.0.0.1:{self.port}",
                f"-storageDataPath={self.data_dir}",
                "-retentionPeriod=100y",  # tests write old timestamps too
                "-dedup.minScrapeInterval=1ms",  # a rewritten sample replaces, not doubles
                "-search.latencyOffset=0s",
                "-loggerLevel=ERROR",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                log_path = self.workdir / "victoria-metrics.log"
                raise RuntimeError(f"victoria-metrics exited; see {log_path}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1.0) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"victoria-metrics did not answer on {self.url} in {timeout_s} s")

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the server gracefully (it flushes its buffers), killing it if it hangs."""
        process, self._process = self._process, None
        stop_process(process, timeout_s=timeout_s)

    def close(self) -> None:
        """Stop the server and close its log."""
        self.stop()
        if self._log is not None:
            self._log.close()
            self._log = None

    def _get(self, path: str, params: list[tuple[str, str]] | None = None) -> bytes:
        query = "?" + urllib.parse.urlencode(params) if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=30.0) as response:
            body: bytes = response.read()
            return body

    def force_flush(self) -> None:
        """Make everything ingested so far visible to searches and exports."""
        self._get("/internal/force_flush")

    def export(self, selector: str, start_s: float = 0.0, stop_s: float | None = None
               ) -> list[dict[str, Any]]:
        """Raw samples of every series matching ``selector``, as VictoriaMetrics stored them.

        Each item is ``{"metric": {"__name__": …, labels…}, "values": […], "timestamps": [ms…]}``.
        """
        self.force_flush()
        params = [("match[]", selector), ("start", f"{start_s:.3f}")]
        if stop_s is not None:
            params.append(("end", f"{stop_s:.3f}"))
        body = self._get("/api/v1/export", params)
        return [json.loads(line) for line in body.decode().splitlines() if line.strip()]

    def count_values(self, selector: str) -> int:
        """How many raw samples the series matching ``selector`` hold."""
        return sum(len(series["values"]) for series in self.export(selector))
