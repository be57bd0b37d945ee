"""The server's front door: every request passes here before the app sees it.

A server on 127.0.0.1 is still reachable by any web page the user opens: a page on another site can post a form
to it (CSRF) or, through a DNS name it re-points at 127.0.0.1, read from it (DNS rebinding). So, as the web
frameworks' own middleware does it (Django's ALLOWED_HOSTS and CSRF origin check, Starlette's TrustedHost):

- **Host**: only the names the server was started for (loopback names, the address it listens on, `--allow-host`
  names); any other is 421 before the app runs: a rebinding page's requests carry its own name.
- **Origin** (or Referer, when a browser sent no Origin) of a state-changing request (POST, PUT, PATCH, DELETE)
  must be this server itself; a request that carries neither comes from a program (curl, `lookalike query`), not
  a page. The pages' forms also carry a per-server token (`CSRF_FIELD`), checked by the handlers.
- **Bodies** are bounded while they stream: a declared Content-Length over the limit is refused before a byte is
  read, and a body that grows past it is cut off and answered 413 (JSON bodies `max_json`, uploads `max_body`).
  The API's JSON endpoints take `application/json` (a cross-site form cannot send it without a CORS preflight,
  which this server never grants) or a multipart upload.

Why by hand: Starlette's TrustedHostMiddleware answers 400 and knows nothing of Origin or body limits, and the
CSRF middlewares on the package index are session- and cookie-based; this server has neither sessions nor
cookies, so a token in the page and an Origin check are the whole of it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

#: Host names every server answers to.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: The form field that carries the per-server token in the pages' forms.
CSRF_FIELD = "csrf"
#: Bounds on request bodies, bytes: JSON (paths, a few options) and uploads (two photos and their fields).
MAX_JSON = 1 * 2**20
#: The largest photo an upload may be, bytes.
MAX_UPLOAD = 40 * 2**20
#: Form fields and files taken per request (verify: two photos; the rest are a few options).
MAX_FORM_FILES, MAX_FORM_FIELDS = 2, 20
#: Paths of the JSON API (the rest are pages).
API_PATHS = ("/query", "/verify")


def host_name(value: str) -> str:
    """`Host` header -> the name alone, lower case (`[::1]:8765` -> `::1`, `Example.org:80` -> `example.org`)."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value


def _netloc(value: str, scheme: str) -> tuple[str, int | None]:
    """`(name, port)` of a Host header or URL authority, the scheme's default port made explicit."""
    name = host_name(value)
    rest = value.strip().lower().rsplit("]", 1)[-1] if value.strip().startswith("[") else value.strip().lower()
    port = rest.rsplit(":", 1)[1] if rest.count(":") == 1 else ""
    default = {"http": 80, "https": 443}.get(scheme)
    return name, int(port) if port.isdigit() else default


def allowed_hosts(bind: str, extra: Iterable[str] = ()) -> set[str]:
    """The names a server listening on `bind` answers to: loopback, the address itself when it is one (not the
    wildcard), and the names the user allowed."""
    names = set(LOOPBACK_HOSTS)
    try:
        if not ipaddress.ip_address(bind).is_unspecified:
            names.add(str(ipaddress.ip_address(bind)))
    except ValueError:
        names.add(bind.lower())  # a name given to --host
    names.update(host_name(h) for h in extra if h)
    return names


def is_loopback(address: str | None) -> bool:
    """Whether a client address is this machine."""
    if not address:
        return False
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


class FrontDoor:
    """ASGI middleware: Host, Origin/Referer and body limits as the module says. `max_body`: bytes of an upload."""

    def __init__(self, app, hosts: Iterable[str], max_body: int, max_json: int = MAX_JSON) -> None:
        self.app = app
        self.hosts = {h.lower() for h in hosts}
        self.max_body, self.max_json = int(max_body), int(max_json)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = host_name(headers.get("host", ""))
        if host not in self.hosts:
            await _refuse(send, 421, f"this server does not answer for host {host or '(none)'!r}", scope)
            return
        method = scope.get("method", "GET")
        if method in UNSAFE_METHODS:
            why = self._cross_site(headers)
            if why:
                await _refuse(send, 403, why, scope)
                return
            ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if scope.get("path") in API_PATHS and ctype not in ("application/json", "multipart/form-data"):
                await _refuse(send, 415, "send the body as application/json (or a multipart upload)", scope)
                return
            limit = self.max_json if ctype == "application/json" else self.max_body
            try:
                declared = int(headers.get("content-length", "0") or 0)
            except ValueError:
                declared = 0
            if declared > limit:
                await _refuse(send, 413, _too_large(limit), scope)
                return
            await self._bounded(scope, receive, send, limit)
            return
        await self.app(scope, receive, send)

    def _cross_site(self, headers: dict[str, str]) -> str | None:
        """Why a state-changing request comes from a page of another origin (another scheme, name or port than
        the Host it was sent to), or None."""
        own = _netloc(headers.get("host", ""), "http")
        for header in ("origin", "referer"):
            value = headers.get(header)
            if value is None:
                continue
            if value == "null":  # a sandboxed frame, a file:// page, a redirect across sites
                return f"refused: a request from an opaque {header} (null) may not change anything here"
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or _netloc(parts.netloc, parts.scheme) != own:
                return f"refused: a request from another site ({header} {value[:80]}) may not change anything here"
            return None  # the browser named this server: Referer need not be read too
        return None  # neither: a program, not a page (browsers send Origin on every cross-site POST)

    async def _bounded(self, scope, receive, send, limit: int) -> None:
        seen, over, started = 0, False, False

        async def counted():
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    over = True
                    return {"type": "http.disconnect"}  # the app stops reading; what it read is dropped
            return message

        async def guarded(message) -> None:
            nonlocal started
            if over:
                return  # the app's answer to a body cut short is replaced by the 413 below
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not over:
                raise
        if over and not started:
            await _refuse(send, 413, _too_large(limit), scope)


def _too_large(limit: int) -> str:
    return f"the request body is over the {limit / 2**20:.0f} MB limit"


async def _refuse(send, status: int, why: str, scope) -> None:
    """A one-line refusal: JSON for the API, text for a page."""
    import json

    accept = dict(scope.get("headers", [])).get(b"accept", b"").decode("latin-1")
    if scope.get("path") in API_PATHS or "json" in accept:
        body, ctype = json.dumps({"error": why}).encode(), b"application/json"
    else:
        body, ctype = f"lookalike: error: {why}\n".encode(), b"text/plain; charset=utf-8"
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})
