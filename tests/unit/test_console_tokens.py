"""Tokens: stored hashed, verified in constant time, scoped to a tenant and a role; the
``forewarn tokens`` command creates, lists and revokes them."""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from forewarn.auth import TokenRow, TokenStore
from forewarn.commands import tokens as tokens_command
from forewarn.errors import ForewarnError
from rules.db import connect


@pytest.fixture
def store(tmp_path: Path) -> Iterator[TokenStore]:
    engine = connect(f"sqlite:///{tmp_path / 'cases.sqlite'}")
    yield TokenStore(engine)
    engine.dispose()


def test_only_the_hash_is_stored(store: TokenStore) -> None:
    issued = store.create("acme", "viewer")
    secret = issued.token.split("_", 2)[2]
    with Session(store.engine) as session:
        row = session.scalar(select(TokenRow))
    assert row is not None and secret not in (row.secret_sha256, row.key, row.name)
    assert row.secret_sha256 == hashlib.sha256(secret.encode()).hexdigest()


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),
    lambda t: t.replace("fw_", "xx_"),
    lambda t: t.split("_", 2)[0] + "_" + "0" * 12 + "_" + t.split("_", 2)[2],
    lambda t: "",
    lambda t: t + "\x00",
    lambda t: t * 10,
], ids=["one-char", "prefix", "other-key", "empty", "nul", "long"])
def test_a_wrong_token_is_nobody(store: TokenStore, mangle: Callable[[str], str]) -> None:
    issued = store.create("acme", "admin")
    assert store.verify(mangle(issued.token)) is None


@pytest.mark.parametrize(("tenant", "role"), [("acme", "root"), ("", "viewer"),
                                              ("a/b", "viewer"), ("x" * 65, "agent")])
def test_bad_tenant_or_role_is_refused(store: TokenStore, tenant: str, role: str) -> None:
    with pytest.raises(ForewarnError):
        store.create(tenant, role)


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default=None)
    tokens_command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    code: int = args.func(args)
    return code


def test_tokens_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "forewarn.toml").write_text(f'[cases]\nurl = "sqlite:///{tmp_path}/cases.sqlite"\n')
    assert _cli("tokens", "create", "--tenant", "acme", "--role", "agent", "--name", "kim") == 0
    token = capsys.readouterr().out.strip()
    key = token.split("_")[1]
    assert _cli("tokens", "list", "--tenant", "acme") == 0
    listing = capsys.readouterr().out
    assert key in listing and "kim" in listing and token.split("_", 2)[2] not in listing
    assert _cli("tokens", "revoke", key) == 0
    assert _cli("tokens", "revoke", key) == 1
    engine = connect(f"sqlite:///{tmp_path / 'cases.sqlite'}")
    assert TokenStore(engine).verify(token) is None
    engine.dispose()
