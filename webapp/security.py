"""Response headers that keep the pages to our own scripts and styles, out of frames and
out of caches; HTTPS for a year once a browser has seen it; the client's real address and
scheme behind trusted proxies."""
from __future__ import annotations

from hypercorn.middleware import ProxyFixMiddleware
from quart import Quart, request

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


HSTS = "max-age=31536000"


def response_headers(secure: bool, static: bool = False) -> list[tuple[str, str]]:
    """The headers every answer carries (the route's own, if it set one, win)."""
    headers = list(HEADERS.items())
    if secure:
        headers.append(("Strict-Transport-Security", HSTS))
    if not static:
        # Pages and answers are per user and may carry secrets (a new token, a reset
        # password): no shared or back-button cache keeps them.
        headers.append(("Cache-Control", "no-store"))
    return headers


def init_security(app: Quart, trusted_proxies: int = 0) -> None:
    if trusted_proxies:
        # X-Forwarded-For/-Proto/-Host as set by the last `trusted_proxies` proxies: the
        # address rate limits count, the scheme that makes cookies Secure, the host
        # same-site checks compare with. Without proxies these headers are not believed.
        app.asgi_app = ProxyFixMiddleware(app.asgi_app, mode="legacy",
                                          trusted_hops=trusted_proxies)

    @app.after_request
    async def _headers(response):
        for name, value in response_headers(request.is_secure, request.endpoint == "static"):
            response.headers.setdefault(name, value)
        if response.status_code >= 400 and (request.content_length or
                                            "transfer-encoding" in request.headers):
            # Refused before its body was read (too large, a bad id, ...): the body is
            # still in the connection, so it is closed after this answer and a keep-alive
            # client sends its next request on a new one, not into the leftover body.
            response.headers["Connection"] = "close"
        return response
