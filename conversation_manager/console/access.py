"""Who may open the console, and what every answer carries.

The console shows callers' names, phones and words, so it is closed by default: it binds to
loopback unless told otherwise, refuses any other address without an operator credential
(`CONSOLE_TOKEN`), and checks that credential on every request, constant-time. Browsers
send it as HTTP Basic (any user name, the token as password), scripts as a Bearer token.
Every answer is `no-store` and carries a strict Content-Security-Policy: only the console's
own scripts and styles run, so even text that got past escaping could not execute.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")
REALM = 'Basic realm="operator console", charset="UTF-8"'
PLOTLY_STYLE_HASHES = (
    "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='",  # the empty <style> Plotly creates, then fills by CSSOM
    "'sha256-ji27qzEtxXZW+7dun6UwjHXJ18e6WAin1VvNtkzIE/o='",  # Plotly 7.1.0's own stylesheet
)
"""Plotly injects its stylesheet inline; these hashes allow exactly those two, not 'unsafe-inline'.
A Plotly upgrade that changes them shows as CSP violations in the browser test's console log."""
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; script-src 'self'; style-src 'self' {' '.join(PLOTLY_STYLE_HASHES)}; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SAFE_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}
STATIC_PREFIX = "/static/"
"""The console's own scripts and styles: no caller data, so a browser may keep them a day."""


class AccessRefused(Exception):
    """The console must not start as configured (e.g. a public address without a credential)."""


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str) -> None:
    """Raise `AccessRefused` unless serving on `host` is safe with this credential."""
    if not is_loopback(host) and not token:
        raise AccessRefused(
            f"refusing to listen on {host}: the console shows callers' names, phones and words. "
            "Set CONSOLE_TOKEN (at least 16 characters) to listen beyond this machine, "
            "or keep the default CONSOLE_HOST=127.0.0.1"
        )


def presented_secret(authorization: str | None) -> bytes | None:
    """The secret in an `Authorization` header (Basic password or Bearer token), if any."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return value.encode("utf-8", "replace")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return None
        _, sep, password = decoded.partition(b":")
        return password if sep else None
    return None


def host_name(host_header: str) -> str:
    """The name in a Host header, without its port (`[::1]:8089` -> `[::1]`)."""
    if host_header.startswith("["):
        return host_header[: host_header.find("]") + 1]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def allowed_hosts_for(bind_host: str) -> tuple[str, ...] | None:
    """On loopback only loopback names are answered, so a web page that rebinds its own domain to
    127.0.0.1 cannot read the console through the operator's browser; elsewhere the credential guards."""
    if is_loopback(bind_host):
        return tuple(dict.fromkeys((*LOOPBACK_NAMES, bind_host)))
    return None


class ConsoleAccess:
    """ASGI middleware: the credential check, the host check and the safe headers, on every answer."""

    def __init__(self, app: ASGIApp, *, token: str, allowed_hosts: tuple[str, ...] | None) -> None:
        self._app = app
        self._token = token.encode("utf-8") if token else b""
        self._allowed_hosts = allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        static = str(scope.get("path", "")).startswith(STATIC_PREFIX)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                for name, value in SAFE_HEADERS.items():
                    out[name] = value
                out["cache-control"] = "private, max-age=86400" if static and message["status"] == 200 else "no-store"
            await send(message)

        if self._allowed_hosts is not None and host_name(headers.get("host", "")) not in self._allowed_hosts:
            await _plain(send_with_headers, 421, "This console answers only on this machine's own address.")
            return
        if self._token and not self._authorized(headers.get("authorization")):
            await _plain(
                send_with_headers, 401, "The operator credential is required.", extra={"www-authenticate": REALM}
            )
            return
        await self._app(scope, receive, send_with_headers)

    def _authorized(self, authorization: str | None) -> bool:
        presented = presented_secret(authorization)
        # compare_digest takes the same time whatever the first differing byte is.
        return presented is not None and hmac.compare_digest(presented, self._token)


async def _plain(send: Send, status: int, text: str, *, extra: dict[str, str] | None = None) -> None:
    body = (text + "\n").encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
