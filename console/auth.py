"""Who is asking: a session cookie for the pages, HTTP Basic (or the cookie) for /api; CSRF
tokens on every form; viewers read, operators also act (403 otherwise).

The session cookie is HttpOnly and SameSite=Strict, and Secure when the console is served over
TLS. A form posted with the session must carry the session's CSRF token; an API call that relies
on the cookie must carry it in `X-CSRF-Token` (HTTP Basic needs none: a browser never sends it
on its own to this origin unless the user typed it).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from collections.abc import Awaitable, Callable, Sequence
from ipaddress import IPv4Network, IPv6Network, ip_address
from urllib.parse import quote, urlsplit

from aiohttp import web

from console import users
from console.state import SETTINGS, STORE

COOKIE = "conekta_console"
LOGIN_COOKIE = "conekta_console_login"  # the login form's own CSRF token (double submit)
PUBLIC = ("/login", "/static/", "/healthz", "/readyz", "/metrics")
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
Network = IPv4Network | IPv6Network
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def user_of(request: web.Request) -> users.User:
    user: users.User = request["user"]
    return user


def csrf_of(request: web.Request) -> str:
    session: users.Session | None = request.get("session")
    return session.csrf_token if session else ""


def require_operator(request: web.Request) -> users.User:
    user = user_of(request)
    if not user.can_operate:
        raise web.HTTPForbidden(
            text=f"{user.name} is a viewer: replay and purge need an operator",
        )
    return user


def remote_of(request: web.Request) -> str:
    """The client's address, for the failed-login limit (the proxy's would lock everyone out)."""
    return client_address(
        request.remote or "unknown",
        request.headers.getall("X-Forwarded-For", []),
        request.app[SETTINGS].console_trusted_proxies,
    )


def client_address(peer: str, forwarded_for: Sequence[str], trusted: Sequence[Network]) -> str:
    """The peer, or, while the address in hand is a trusted proxy, the hop it says it forwarded
    for (X-Forwarded-For, read from the right: a client can write the header, so only what our
    own proxies appended counts)."""
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",") if hop.strip()]
    address = peer
    while hops and _is_trusted(address, trusted):
        address = hops.pop()
    return address[:64].replace("\x00", "")  # a key in a text column: bounded, no NUL


def _is_trusted(address: str, trusted: Sequence[Network]) -> bool:
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    path = request.path
    if request.method in UNSAFE:
        check_origin(request)
        if path.startswith("/api/"):
            check_json(request)
    if path.startswith(PUBLIC):
        return await handler(request)
    if path.startswith("/api/"):
        await _api_user(request)
    else:
        await _page_user(request)
    return await handler(request)


def check_origin(request: web.Request) -> None:
    """A state-changing request that names its origin must come from this site: a cross-site
    page (a form posting to the API with Basic credentials the browser cached) is refused before
    anything is read. No Origin (curl, scripts) is fine: they hold credentials of their own.
    The host is compared, not the scheme: behind a TLS proxy that sends no X-Forwarded-Proto the
    browser's https origin is still this site, and no other site can have this host."""
    origin = request.headers.get("Origin")
    if origin is None:
        return
    parts = urlsplit(origin)
    if parts.scheme not in {"http", "https"} or parts.netloc.lower() != request.host.lower():
        raise web.HTTPForbidden(text=f"cross-site request refused (Origin {origin[:100]!r})")


def check_json(request: web.Request) -> None:
    """State-changing API calls are JSON: a browser cannot send `application/json` across sites
    without a CORS preflight (which this console never grants), unlike a form's `text/plain`."""
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(text="send the body as Content-Type: application/json")


async def _api_user(request: web.Request) -> None:
    store = request.app[STORE]
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("basic "):
        name, password = _basic(header)
        try:
            user = await users.authenticate(store, name, password, remote_of(request))
        except users.TooManyFailures as exc:
            raise web.HTTPTooManyRequests(text=str(exc)) from None
        if user is None:
            raise _unauthorized("wrong user name or password")
        request["user"] = user
        return
    session = await _session(request)
    if session is None:
        raise _unauthorized("log in: HTTP Basic, or the console's session cookie")
    if request.method in UNSAFE and not _same(
        request.headers.get("X-CSRF-Token", ""), session.csrf_token
    ):
        raise web.HTTPForbidden(text="missing or wrong X-CSRF-Token")
    request["user"], request["session"] = session.user, session


async def _page_user(request: web.Request) -> None:
    session = await _session(request)
    if session is None:
        target = request.path_qs if request.method == "GET" else "/"
        raise web.HTTPSeeOther(f"/login?next={quote(target, safe='')}")
    request["user"], request["session"] = session.user, session
    if request.method in UNSAFE:
        form = await request.post()
        if any("\x00" in str(v) for v in form.values()):
            raise web.HTTPBadRequest(text="text may not contain NUL characters")
        if not _same(str(form.get("csrf_token", "")), session.csrf_token):
            raise web.HTTPForbidden(text="the form is stale or forged (CSRF token): reload it")


async def _session(request: web.Request) -> users.Session | None:
    token = request.cookies.get(COOKIE)
    return await users.session(request.app[STORE], token) if token else None


def _basic(header: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(header.split(" ", 1)[1], validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, IndexError):
        raise _unauthorized("malformed Basic credentials") from None
    name, sep, password = decoded.partition(":")
    if not sep or "\x00" in decoded:
        raise _unauthorized("malformed Basic credentials")
    return name, password


def _same(given: str, expected: str) -> bool:
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def _unauthorized(message: str) -> web.HTTPUnauthorized:
    return web.HTTPUnauthorized(
        text=message,
        headers={"WWW-Authenticate": 'Basic realm="conekta-ingest console", charset="UTF-8"'},
    )


def login_form_token(request: web.Request) -> str:
    """The login form's CSRF token: reuse the cookie's, or a new one (set by the caller)."""
    return request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)


def check_login_form(request: web.Request, given: str) -> bool:
    return _same(given, request.cookies.get(LOGIN_COOKIE, ""))


def served_over_tls(request: web.Request) -> bool:
    """TLS here, or at the proxy in front (README: an SSO proxy or ingress terminates it). Trusting
    the header only ever adds `Secure` to a cookie: a forged one harms nobody but its sender."""
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return request.secure or forwarded == "https"


def set_cookie(response: web.StreamResponse, request: web.Request, name: str, value: str) -> None:
    response.set_cookie(
        name,
        value,
        httponly=True,
        samesite="Strict",
        secure=served_over_tls(request),
        path="/",
        max_age=int(users.SESSION_TTL) if name == COOKIE else 3600,
    )
