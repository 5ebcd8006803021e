"""API tokens of the console and REST API: created once, shown once, stored hashed.

A token reads ``fw_<key>_<secret>``: ``key`` finds the row, ``secret`` (32 random bytes) is
checked against its SHA-256 with a constant-time compare. A random 256-bit secret needs no slow
password hash: nobody can guess it, and a stolen table gives no token back. Every token belongs to
one tenant and has one role; the console's roles are ordered (an admin may do what an agent may,
an agent what a viewer may). The ``ingest`` role stands apart: such a token may only post
telemetry to core's HTTP ingest (``POST /api/v1/ingest/{mapping}``, docs/connect.md), and no
console token may: :meth:`TokenStore.verify` (the console and its API) refuses ingest tokens,
:meth:`TokenStore.verify_ingest` (core's HTTP ingest) accepts nothing else.

>>> from rules.db import connect
>>> engine = connect("sqlite://")
>>> tokens = TokenStore(engine)
>>> issued = tokens.create("acme", "agent", "laptop of Kim", now=0.0)
>>> issued.token.startswith("fw_")
True
>>> who = tokens.verify(issued.token)
>>> (who.tenant, who.role, who.allows("viewer"), who.allows("admin"))
('acme', 'agent', True, False)
>>> tokens.verify(issued.token[:-1] + "x") is None
True
>>> tokens.revoke(issued.key, now=1.0), tokens.verify(issued.token)
(True, None)
>>> pusher = tokens.create("acme", "ingest", "cloud integration", now=2.0)
>>> tokens.verify(pusher.token) is None, tokens.verify_ingest(pusher.token).tenant
(True, 'acme')
>>> tokens.verify_ingest(tokens.create("acme", "admin", now=3.0).token) is None
True
>>> engine.dispose()
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Literal, get_args

from sqlalchemy import Engine, Float, String, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from edge.names import NAME_RE
from forewarn.errors import ForewarnError

__all__ = ["CONSOLE_ROLES", "ROLES", "IssuedToken", "Principal", "Role", "TokenRow", "TokenStore"]

Role = Literal["viewer", "agent", "admin", "ingest"]
ROLES: tuple[Role, ...] = get_args(Role)
#: the roles of the console and its API, in order; ``ingest`` is not among them
CONSOLE_ROLES: tuple[Role, ...] = ("viewer", "agent", "admin")
_RANK = {role: rank for rank, role in enumerate(CONSOLE_ROLES)}
_TOKEN = re.compile(r"^fw_([0-9a-f]{12})_([A-Za-z0-9_-]{20,100})$")


class _Base(DeclarativeBase):
    """The console's own table lives beside the cases, in the same database."""


class TokenRow(_Base):
    """One API token: its tenant, role and the SHA-256 of its secret (never the secret)."""

    __tablename__ = "api_tokens"

    key: Mapped[str] = mapped_column(String(12), primary_key=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a token's tenant and role."""

    key: str
    tenant: str
    role: Role
    name: str = ""

    def allows(self, needed: Role) -> bool:
        """True when this principal's role is ``needed`` or above it (``ingest``: only itself)."""
        if self.role == "ingest" or needed == "ingest":
            return self.role == needed
        return _RANK[self.role] >= _RANK[needed]


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A freshly created token: ``token`` is shown to its owner once and never stored."""

    key: str
    token: str
    tenant: str
    role: Role


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenStore:
    """Creates, verifies, lists and revokes API tokens in the case database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        _Base.metadata.create_all(engine)

    def create(self, tenant: str, role: str, name: str = "", now: float | None = None
               ) -> IssuedToken:
        """A new token for ``tenant`` with ``role``; raises ForewarnError on a bad argument."""
        if role not in ROLES:
            raise ForewarnError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        if not NAME_RE.fullmatch(tenant):
            raise ForewarnError(f"tenant {tenant!r} is not a valid tenant name")
        key = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        with Session(self.engine) as session:
            session.add(TokenRow(key=key, secret_sha256=_digest(secret), tenant=tenant,
                                 role=role, name=name[:200],
                                 created_at=time.time() if now is None else now))
            session.commit()
        return IssuedToken(key, f"fw_{key}_{secret}", tenant, role)

    def verify(self, token: str) -> Principal | None:
        """The principal of a valid, unrevoked console token; None for anything else (an
        ingest token too: it grants no console or API access)."""
        principal = self._verify(token)
        return None if principal is None or principal.role not in CONSOLE_ROLES else principal

    def verify_ingest(self, token: str) -> Principal | None:
        """The principal of a valid, unrevoked token of the ``ingest`` role; None otherwise."""
        principal = self._verify(token)
        return principal if principal is not None and principal.role == "ingest" else None

    def _verify(self, token: str) -> Principal | None:
        match = _TOKEN.match(token.strip())
        if match is None:
            return None
        key, secret = match.groups()
        with Session(self.engine) as session:
            row = session.get(TokenRow, key)
            if row is None or row.revoked_at is not None:
                return None
            if not hmac.compare_digest(row.secret_sha256, _digest(secret)):
                return None
            if row.role not in ROLES:
                return None
            return Principal(row.key, row.tenant, row.role, row.name)

    def principal(self, key: str) -> Principal | None:
        """The principal of an unrevoked token by its key (web sessions keep only the key)."""
        with Session(self.engine) as session:
            row = session.get(TokenRow, key)
            if row is None or row.revoked_at is not None or row.role not in CONSOLE_ROLES:
                return None
            return Principal(row.key, row.tenant, row.role, row.name)

    def list(self, tenant: str | None = None) -> list[TokenRow]:
        """Tokens (hashes only), oldest first; of one tenant when given."""
        query = select(TokenRow).order_by(TokenRow.created_at, TokenRow.key)
        if tenant is not None:
            query = query.where(TokenRow.tenant == tenant)
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(query))

    def revoke(self, key: str, now: float | None = None) -> bool:
        """Revoke a token by its key; False when there is no such unrevoked token."""
        with Session(self.engine) as session:
            done = session.execute(
                update(TokenRow).where(TokenRow.key == key, TokenRow.revoked_at.is_(None))
                .values(revoked_at=time.time() if now is None else now))
            session.commit()
            return bool(done.rowcount)  # type: ignore[attr-defined]
