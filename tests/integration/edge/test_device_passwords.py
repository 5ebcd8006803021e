"""``forewarn devices add``: 100,000 PBKDF2 rounds that a real Mosquitto accepts, the password
from standard input or a file (never the command line), a rewrite under a lock (issue 18.8)."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import subprocess
import sys
import uuid
from pathlib import Path

import aiomqtt
import pytest

from forewarn.devices.passwords import add_device, verify_password_line
from tests.servers.mosquitto import Mosquitto, mosquitto_binary

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


def _forewarn(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "forewarn.cli", *args], input=stdin,
                          capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


async def _connects(port: int, username: str, password: str) -> bool:
    try:
        async with aiomqtt.Client("127.0.0.1", port, username=username, password=password,
                                  identifier=f"{username}-{uuid.uuid4().hex[:6]}",
                                  protocol=aiomqtt.ProtocolVersion.V5, timeout=10.0):
            return True
    except aiomqtt.MqttError:
        return False


def test_mosquitto_accepts_the_hashed_password_from_stdin_and_a_file(tmp_path) -> None:
    if mosquitto_binary() is None:
        pytest.skip("mosquitto not installed (Debian package mosquitto)")
    passwd = tmp_path / "passwd"
    secret = tmp_path / "core.secret"
    secret.write_text("core pass with spaces\n")
    by_stdin = _forewarn("devices", "add", "hp-0001", "--mosquitto-passwd", str(passwd),
                         "--password-stdin", stdin="device-secret\n")
    by_file = _forewarn("devices", "add", "forewarn-core", "--mosquitto-passwd", str(passwd),
                        "--password-file", str(secret))
    generated = _forewarn("devices", "add", "hp-0002", "--mosquitto-passwd", str(passwd))
    assert (by_stdin.returncode, by_file.returncode, generated.returncode) == (0, 0, 0), \
        (by_stdin.stderr, by_file.stderr, generated.stderr)
    # a given password is not echoed; a generated one is printed in the credentials format
    assert by_stdin.stdout == by_file.stdout == ""
    device, password = generated.stdout.split()
    assert device == "hp-0002"
    lines = dict(line.split(":", 1) for line in passwd.read_text().splitlines())
    assert all(int(hashed.split("$")[2]) >= 100_000 for hashed in lines.values())
    assert oct(passwd.stat().st_mode & 0o777) == "0o600"

    with Mosquitto(tmp_path / "mosquitto", allow_anonymous=False,
                   extra_config=f"user root\npassword_file {passwd}\n") as broker:
        results = asyncio.run(_all(broker.port, [
            ("hp-0001", "device-secret"), ("forewarn-core", "core pass with spaces"),
            ("hp-0002", password), ("hp-0001", "wrong"), ("hp-0002", "device-secret"),
        ]))
    assert results == [True, True, True, False, False]


async def _all(port: int, attempts: list[tuple[str, str]]) -> list[bool]:
    return [await _connects(port, user, password) for user, password in attempts]


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["--password", "on-the-command-line"], "",
         "--password is not accepted: the command line shows it to ps"),
        (["--password-stdin"], "", "no password on the first line of standard input"),
        (["--password-file", "/nonexistent/secret"], "",
         "cannot read password file /nonexistent/secret: No such file or directory"),
        (["--iterations", "101"], "", "--iterations 101 is below 100,000"),
    ],
    ids=["no-password-option", "empty-stdin", "missing-file", "too-few-rounds"],
)
def test_refused_password_sources(tmp_path, args, stdin, message) -> None:
    passwd = tmp_path / "passwd"
    result = _forewarn("devices", "add", "hp-0001", "--mosquitto-passwd", str(passwd), *args,
                       stdin=stdin)
    assert result.returncode == 2
    assert message in result.stderr
    assert not passwd.exists()


def _add_many(passwd: str, worker: int, count: int) -> None:
    for i in range(count):
        add_device(Path(passwd), f"w{worker}-{i}", f"pw-{worker}-{i}", iterations=1)


def test_concurrent_provisioning_loses_no_device(tmp_path) -> None:
    passwd = tmp_path / "passwd"
    add_device(passwd, "forewarn-core", "core", iterations=1)
    workers, count = 12, 25
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_add_many, args=(str(passwd), w, count))
                 for w in range(workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
        assert process.exitcode == 0
    lines = {line.split(":", 1)[0]: line for line in passwd.read_text().splitlines()}
    assert len(lines) == workers * count + 1
    assert verify_password_line(lines["w7-13"], "pw-7-13")
    assert verify_password_line(lines["forewarn-core"], "core")
    # nothing left behind but the lock file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["passwd", "passwd.lock"]
