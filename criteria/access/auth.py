"""Bearer tokens with roles: `viewer` reads, `admin` also writes. Only hashes are stored."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from sqlalchemy.orm import Session

from criteria.readiness.schemas import Role
from storage import repository
from storage.db import get_db_session

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
