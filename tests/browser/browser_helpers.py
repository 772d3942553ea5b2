"""Helpers shared by the browser tests (not tests themselves)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx

DemoServer = Any
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
#: Screenshots of the pages the tests drove (ignored by git).
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def screenshot(page: Any, name: str, *, full_page: bool = False, min_bytes: int = 30_000) -> None:
    """Save a PNG of the page under test-artifacts/ and check it shows something."""
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / name
    page.screenshot(path=str(shot), full_page=full_page)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > min_bytes, f"screenshot suspiciously small ({len(data)} bytes)"


def log_in(page: Any, server: DemoServer, username: str, path: str = "/") -> None:
    """Open `path` on the console, log in when it asks, and wait to be back on `path`."""
    page.goto(f"{server.base_url}{path}")
    page.wait_for_url(f"{server.base_url}/login")
    page.fill("#login-username", username)
    page.fill("#login-password", server.password)
    page.click("#login-submit")
    page.wait_for_url(f"{server.base_url}{path}")


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


def drawn_chart_js(element_id: str) -> str:
    """JavaScript giving the ECharts chart in #element_id as the browser drew it:
    {x: category labels, series: {name: data}}, or null before it is drawn (NiceGUI maps the
    module name `nicegui-echart` in its import map)."""
    return f"""async () => {{
  const {{echarts}} = await import("nicegui-echart");
  const el = document.getElementById("{element_id}");
  const chart = el && echarts.getInstanceByDom(el);
  if (!chart) return null;
  const o = chart.getOption();
  return {{
    x: o.xAxis && o.xAxis[0].data ? o.xAxis[0].data : [],
    series: Object.fromEntries((o.series || []).map((s) => [s.name, s.data])),
  }};
}}"""
