"""Bearer tokens with roles: `viewer` reads, `admin` also writes. Only hashes are stored."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from typing import Annotated, Literal

from fastapi import Depends, HTTPException, Request, status
from sqlalchemy.orm import Session

from storage import repository
from storage.db import get_db_session
from storage.models import ApiToken

Role = Literal["viewer", "admin"]
_RANK = {"viewer": 0, "admin": 1}
TOKEN_PREFIX = "swo_"


def hash_token(token: str) -> str:
    """SHA-256 of a token; tokens are 256-bit random, so no salt or slow hash is needed."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, role: Role, name: str) -> str:
    """Make a new token, store its hash, and return the token (shown once)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    repository.add_token(session, name=name, role=role, token_sha256=hash_token(token))
    return token


def list_tokens(session: Session) -> list[ApiToken]:
    """The stored tokens (names, roles, ids; never the tokens themselves)."""
    return repository.list_tokens(session)


def revoke_token(session: Session, which: str) -> ApiToken | None:
    """Remove the token with this id, or this token itself; the removed row, or None."""
    if which.startswith(TOKEN_PREFIX):
        row = repository.token_by_hash(session, hash_token(which))
    elif which.isdigit():
        row = session.get(ApiToken, int(which))
    else:
        row = None
    if row is not None:
        repository.delete_token(session, row)
    return row


def require(role: Role) -> Callable[..., str]:
    """A dependency that lets a request through with a token of `role` (or higher)."""

    def check(request: Request, session: Annotated[Session, Depends(get_db_session)]) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "a bearer token is required",
                headers={"WWW-Authenticate": "Bearer"},
            )
        digest = hash_token(token.strip())
        stored = repository.token_by_hash(session, digest)
        # The lookup is by hash; comparing the hashes in constant time as well keeps the check
        # independent of how the database compares strings.
        if stored is None or not hmac.compare_digest(stored.token_sha256, digest):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "unknown token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if _RANK[stored.role] < _RANK[role]:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this needs an {role} token")
        return stored.name

    return check


Viewer = Annotated[str, Depends(require("viewer"))]
Admin = Annotated[str, Depends(require("admin"))]
