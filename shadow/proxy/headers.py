"""Which of the client's request headers reach an upstream.

Headers about this hop, or that the proxy sets itself, never pass. When the proxy calls an
upstream with its own configured key, only the headers of `PROXY_KEY_ALLOWED` (and the
upstream's `forward_headers`) pass: the client must not pick the organisation or project that
is billed (`OpenAI-Organization`, `OpenAI-Project`), nor hand over cookies or forwarding
headers. When the client's own key reaches the upstream, the request is the client's own and
passes as it came.
"""

from __future__ import annotations

from collections.abc import Iterable

USE_CASE_HEADER = "x-switchover-use-case"
FEATURE_HEADER = "x-switchover-feature"

# About this hop, or set by the proxy itself.
_HOP = frozenset(
    {
        "host",
        "content-length",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "upgrade",
        "proxy-authorization",
        "accept-encoding",
        "authorization",
        "x-api-key",
        USE_CASE_HEADER,
        FEATURE_HEADER,
    }
)

# Under the proxy's own key: what describes the request rather than the account or the client's
# network. A name ending in `*` is a prefix (the SDKs' `x-stainless-*` telemetry).
PROXY_KEY_ALLOWED = (
    "accept",
    "content-type",
    "user-agent",
    "idempotency-key",
    "openai-beta",
    "anthropic-version",
    "anthropic-beta",
    "x-stainless-*",
)


class HeaderPolicy:
    """The client headers one upstream receives, depending on whose key is used."""

    def __init__(self, extra_allowed: Iterable[str] = ()) -> None:
        names = [name.lower() for name in (*PROXY_KEY_ALLOWED, *extra_allowed)]
        self._exact = frozenset(name for name in names if not name.endswith("*"))
        self._prefixes = tuple(name[:-1] for name in names if name.endswith("*"))

    def allowed_under_proxy_key(self, name: str) -> bool:
        """Whether a (lower-case) client header passes when the proxy's own key is used."""
        return name in self._exact or name.startswith(self._prefixes)

    def forward(
        self, raw_headers: Iterable[tuple[bytes, bytes]], proxy_key: str | None
    ) -> tuple[dict[str, str], dict[str, str]]:
        """The headers to send upstream (without a key), and the client's own key headers.

        The client's key is `authorization` (OpenAI) or `x-api-key` (Anthropic).
        """
        headers = {"accept-encoding": "identity"}
        client_auth: dict[str, str] = {}
        for raw_name, raw_value in raw_headers:
            name = raw_name.decode("latin-1").lower()
            if name in ("authorization", "x-api-key"):
                client_auth[name] = raw_value.decode("latin-1")
            elif name in _HOP:
                continue
            elif proxy_key is None or self.allowed_under_proxy_key(name):
                headers[name] = raw_value.decode("latin-1")
        return headers, client_auth
