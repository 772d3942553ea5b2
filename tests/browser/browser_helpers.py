"""Helpers shared by the browser tests (not tests themselves)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import httpx

DemoServer = Any
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def record_hosts(page: Any) -> list[str]:
    """Collect every request the page makes to a host that is not this machine."""
    outside: list[str] = []

    def on_request(request: Any) -> None:
        url = urlparse(request.url)
        if url.scheme in ("http", "https", "ws", "wss") and url.hostname not in LOCAL_HOSTS:
            outside.append(request.url)

    page.on("request", on_request)
    return outside


def api(server: DemoServer, method: str, path: str, token: str, body: Any = None) -> Any:
    r = httpx.request(
        method,
        f"{server.base_url}{path}",
        headers={"Authorization": f"Bearer {token}"},
        json=body,
        timeout=30,
    )
    assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text}"
    return r.json()


def unit_by_callsign(server: DemoServer, token: str, callsign: str) -> dict[str, Any]:
    units: list[dict[str, Any]] = api(server, "GET", "/api/v1/units", token)
    return next(u for u in units if u["callsign"] == callsign)
