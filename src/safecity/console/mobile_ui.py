"""Phone pages: `/m/panic`, the panic button of a registered device, and `/m/field`, the
field officer's app (his unit's jobs, status steps, position).

Large touch targets, one column, nothing loaded from outside this server. Both call the
dispatch and incident services server-side from NiceGUI handlers; the browser only supplies
what only it knows: the device key kept in its localStorage and the phone's position
(`navigator.geolocation`, which browsers offer on https or localhost only)."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi.responses import RedirectResponse
from nicegui import app as nicegui_app
from nicegui import ui
from nicegui.element import Element
from sqlalchemy.orm import Session

from safecity.console import pages as base
from safecity.console.dispatch_ui import ASSIGNMENT_LABELS, STATUS_LABELS, apply_change, in_page
from safecity.core.auth import Principal
from safecity.core.errors import InvalidInput, SafeCityError, Unauthenticated
from safecity.core.runtime import Runtime
from safecity.dispatch import service as dispatch
from safecity.dispatch.schemas import AssignmentOut, PanicAccepted, PanicIn, Ping
from safecity.incidents import service as incidents
from safecity.incidents.schemas import IncidentDetail
from safecity.registry import service as registry
from safecity.registry.schemas import UnitOut

log = logging.getLogger("safecity.console.mobile")

#: Seconds between two automatic position reports from the field app.
FIELD_PING_S = 30.0
#: How long the phone may look for a GPS fix, milliseconds.
GPS_TIMEOUT_MS = 8000
DISPOSITIONS = {
    "arrested": "Arrested",
    "advised": "Advised",
    "false_alarm": "False alarm",
    "report_filed": "Report filed",
    "referred": "Referred",
}
_DEVICE_KINDS = {
    "citizen": "citizen",
    "diplomatic_mission": "diplomatic mission",
    "school": "school",
    "bank": "bank",
    "business": "business",
    "other": "other",
}

CSS = """
body { background: #0b1220; }
.nicegui-content { padding: 0; gap: 0; }
.sc-m { max-width: 560px; width: 100%; margin: 0 auto; padding: 12px; gap: 12px;
  color: #e2e8f0; }
.sc-m-bar { width: 100%; display: flex; align-items: center; gap: 8px; }
.sc-m-card { background: #0f172a; border: 1px solid #1e293b; border-radius: 14px;
  padding: 14px; width: 100%; }
.sc-m-title { font-size: 20px; font-weight: 700; color: #f8fafc; }
.sc-m-sub { font-size: 14px; color: #94a3b8; }
.sc-m-big { font-size: 22px; font-weight: 700; color: #f8fafc; line-height: 1.2; }
.sc-m-kv { display: grid; grid-template-columns: 96px 1fr; gap: 4px 10px; font-size: 15px; }
.sc-m-kv .k { color: #64748b; } .sc-m-kv .v { color: #e2e8f0; word-break: break-word; }
.sc-big-btn { min-height: 64px; width: 100%; font-size: 20px !important;
  border-radius: 14px !important; font-weight: 700; }
.sc-big-btn.q-btn--disabled, .sc-big-btn[disabled] { opacity: .35 !important; }
.q-btn.sc-panic-btn { width: min(74vw, 300px); height: min(74vw, 300px);
  border-radius: 50% !important; font-size: 44px !important; font-weight: 900 !important;
  letter-spacing: .08em; color: #fff !important;
  background: radial-gradient(circle at 35% 30%, #f87171, #b91c1c 60%, #7f1d1d) !important;
  box-shadow: 0 0 0 12px rgba(220, 38, 38, .18), 0 14px 30px rgba(0, 0, 0, .6); }
.q-btn.sc-panic-btn.q-btn--disabled { opacity: .45 !important; }
.q-btn.sc-panic-btn:active { transform: scale(.97); }
.sc-prio { font-weight: 700; border-radius: 4px; padding: 0 6px; }
.sc-p1 { color: #fff; background: #dc2626; }
.sc-p2 { color: #111; background: #f59e0b; }
.sc-p3 { color: #fff; background: #2563eb; }
.sc-p4 { color: #cbd5e1; background: #334155; }
.sc-ack { background: #052e16; border: 2px solid #22c55e; border-radius: 14px;
  padding: 16px; width: 100%; }
.sc-ack .head { font-size: 26px; font-weight: 800; color: #4ade80; }
.sc-ack .msg { font-size: 17px; color: #dcfce7; margin-top: 4px; }
.sc-m-chip { border-radius: 6px; padding: 2px 8px; font-size: 14px; font-weight: 600;
  background: #1e293b; color: #cbd5e1; }
.sc-m-chip[data-status=available] { background: #14532d; color: #bbf7d0; }
.sc-m-chip[data-status=dispatched], .sc-m-chip[data-status=en_route],
.sc-m-chip[data-status=assigned] { background: #713f12; color: #fde68a; }
.sc-m-chip[data-status=on_scene] { background: #581c87; color: #e9d5ff; }
.sc-m-tl { font-size: 14px; color: #cbd5e1; border-left: 3px solid #334155;
  padding: 2px 0 6px 10px; }
.sc-m-tl .t { color: #64748b; margin-right: 6px; font-variant-numeric: tabular-nums; }
.sc-disp .q-btn { min-height: 48px; font-size: 15px; }
.sc-m a { color: #7dd3fc; }
"""

JS = r"""
<script>
window.SafeCityMobile = (() => {
  const KEY = "safecity.panic.deviceKey";
  return {
    key() { try { return localStorage.getItem(KEY) || ""; } catch (e) { return ""; } },
    setKey(k) { localStorage.setItem(KEY, k); return true; },
    forget() { localStorage.removeItem(KEY); return true; },
    stripKey() {
      const u = new URL(window.location.href);
      if (u.searchParams.has("key")) {
        u.searchParams.delete("key");
        history.replaceState(null, "", u.pathname + u.search + u.hash);
      }
      return true;
    },
    position(timeoutMs, maxAgeMs) {
      return new Promise((resolve) => {
        if (!navigator.geolocation) {
          resolve({error: "this browser cannot tell its location"});
          return;
        }
        navigator.geolocation.getCurrentPosition(
          (p) => resolve({lat: p.coords.latitude, lon: p.coords.longitude,
                          accuracy: p.coords.accuracy, speed: p.coords.speed}),
          (e) => resolve({error: e.message || "location refused"}),
          {enableHighAccuracy: true, timeout: timeoutMs, maximumAge: maxAgeMs || 0});
      });
    },
    vibrate(pattern) { if (navigator.vibrate) navigator.vibrate(pattern); return true; },
  };
})();
</script>
"""


# --------------------------------------------------------------------------- helpers


def distance_bearing(
    from_lat: float, from_lon: float, to_lat: float, to_lon: float
) -> tuple[float, str]:
    """Metres and compass direction (N, NE, ...) from one point to another."""
    k = math.cos(math.radians((from_lat + to_lat) / 2))
    dx, dy = (to_lon - from_lon) * k, to_lat - from_lat
    metres = math.hypot(dx, dy) * 111_195.0
    angle = (math.degrees(math.atan2(dx, dy)) + 360.0) % 360.0
    return metres, ("N", "NE", "E", "SE", "S", "SW", "W", "NW")[round(angle / 45) % 8]


def _distance_text(metres: float) -> str:
    return f"{metres / 1000:.1f} km" if metres >= 1000 else f"{metres:.0f} m"


@dataclass(frozen=True)
class Fix:
    """A position from the phone, or why there is none."""

    lat: float | None = None
    lon: float | None = None
    accuracy_m: float | None = None
    speed_kmh: float | None = None
    error: str | None = None


def parse_fix(raw: Any) -> Fix:
    """What `SafeCityMobile.position()` answered (anything the browser sent), checked."""
    if not isinstance(raw, dict):
        return Fix(error="no answer from the phone's location service")
    if raw.get("error"):
        return Fix(error=str(raw["error"])[:200])
    try:
        lat, lon = float(raw["lat"]), float(raw["lon"])
    except (KeyError, TypeError, ValueError):
        return Fix(error="the phone sent no usable position")
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or math.isnan(lat + lon):
        return Fix(error="the phone sent an impossible position")

    def number(key: str, scale: float = 1.0) -> float | None:
        try:
            value = float(raw[key]) * scale
        except (KeyError, TypeError, ValueError):
            return None
        return value if math.isfinite(value) and value >= 0 else None

    speed = number("speed", 3.6)
    return Fix(lat, lon, number("accuracy"), min(speed, 400.0) if speed is not None else None)


async def _locate(*, max_age_ms: int = 0) -> Fix:
    """The phone's position: a fix at most `max_age_ms` old (0: a fresh one)."""
    try:
        raw = await ui.run_javascript(
            f"return SafeCityMobile.position({GPS_TIMEOUT_MS}, {int(max_age_ms)})",
            timeout=GPS_TIMEOUT_MS / 1000 + 4,
        )
    except TimeoutError:
        return Fix(error="the phone did not find its position in time")
    return parse_fix(raw)


def _head() -> None:
    ui.add_css(CSS)
    ui.add_head_html(JS)
    ui.add_head_html('<meta name="theme-color" content="#0b1220">')
    ui.query("body").classes("bg-slate-950")


def _text(text: str, *, tag: str = "div", classes: str = "") -> base._Cell:
    cell = base._Cell(text, tag=tag)
    if classes:
        cell.classes(classes)
    return cell


# --------------------------------------------------------------------------- panic


def _device(runtime: Runtime, key: str) -> tuple[str, str]:
    with runtime.sessions() as session:
        dev = dispatch.device_for_key(session, device_key=key)
        return dev.name, _DEVICE_KINDS.get(dev.kind, dev.kind)


def _send_panic(runtime: Runtime, key: str, fix: Fix) -> PanicAccepted:
    panic_in = PanicIn(lat=fix.lat, lon=fix.lon, accuracy_m=fix.accuracy_m)
    with runtime.sessions() as session:
        return dispatch.panic(session, device_key=key, panic_in=panic_in, now=runtime.clock.now())


class _PanicPage:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.key = ""
        with ui.column().classes("sc-m items-center"):
            with ui.element("div").classes("sc-m-bar"):
                ui.icon("shield", size="md").classes("text-sky-500")
                with ui.column().classes("gap-0"):
                    ui.label("SafeCity Panic").classes("sc-m-title")
                    self.device = ui.label("Checking this device…").props("id=panic-device")
                    self.device.classes("sc-m-sub")
            with ui.column().classes("sc-m-card gap-2").props("id=panic-setup") as setup:
                ui.label("Set up this phone").classes("sc-m-big")
                ui.label(
                    "Enter the device key the command centre gave you. It is kept on this "
                    "phone only."
                ).classes("sc-m-sub")
                self.key_input = ui.input("Device key").props(
                    "for=panic-key outlined autocomplete=off spellcheck=false"
                )
                self.key_input.classes("w-full")
                self.key_error = ui.label("").props("id=panic-key-error role=alert")
                self.key_error.classes("text-red-400")
                ui.button("Save key", on_click=self.save_key).props(
                    "id=panic-key-save unelevated no-caps color=light-blue-9"
                ).classes("sc-big-btn")
            self.setup = setup
            setup.set_visibility(False)
            self.button = ui.button("PANIC", on_click=self.press).props(
                "id=panic-button unelevated color=red-9 aria-label='Send a panic alert'"
            )
            self.button.classes("sc-panic-btn my-4")
            self.button.disable()
            ui.label("Press once: the police control room gets your alert and location.").classes(
                "sc-m-sub text-center"
            )
            self.status = ui.label("").props("id=panic-status role=status aria-live=polite")
            self.status.classes("text-base text-amber-300 text-center")
            with ui.element("div").classes("sc-ack").props("id=panic-ack role=alert") as ack:
                ui.label("Help is coming").classes("head")
                self.message = ui.label("").props("id=panic-message").classes("msg")
                with ui.element("div").classes("sc-m-kv mt-3"):
                    _text("Alert", classes="k")
                    self.incident = _text("", classes="v")
                    self.incident.props["id"] = "panic-incident"
                    _text("Station", classes="k")
                    self.station = _text("", classes="v")
                    self.station.props["id"] = "panic-station"
                    _text("Nearest unit", classes="k")
                    self.eta = _text("", classes="v")
                    self.eta.props["id"] = "panic-eta"
            self.ack = ack
            ack.set_visibility(False)
            ui.link("Use another device key", "#").props("id=panic-forget").classes(
                "text-sm mt-6"
            ).on("click.prevent", self.forget)

    async def start(self, key_from_url: str | None) -> None:
        if key_from_url:
            await ui.run_javascript(
                f"SafeCityMobile.setKey({json.dumps(key_from_url.strip())}); "
                "return SafeCityMobile.stripKey()"
            )
        key = await ui.run_javascript("return SafeCityMobile.key()")
        await self.use_key(key if isinstance(key, str) else "")

    async def use_key(self, key: str) -> None:
        key = key.strip()
        if not key:
            self.show_setup("")
            return
        try:
            name, kind = await base._in_thread(_device, self.runtime, key)
        except Unauthenticated as exc:
            self.show_setup(exc.message)
            return
        self.key = key
        self.device.set_text(f"{name} · {kind}")
        self.setup.set_visibility(False)
        self.button.enable()

    def show_setup(self, error: str) -> None:
        self.key = ""
        self.button.disable()
        self.device.set_text("No device key on this phone")
        self.key_error.set_text(error[:1].upper() + error[1:] + "." if error else "")
        self.setup.set_visibility(True)

    async def save_key(self) -> None:
        key = str(self.key_input.value or "").strip()
        if not key:
            self.key_error.set_text("Enter the key first.")
            return
        try:
            await base._in_thread(_device, self.runtime, key)
        except Unauthenticated as exc:
            self.key_error.set_text(exc.message[:1].upper() + exc.message[1:] + ".")
            return
        await ui.run_javascript(f"return SafeCityMobile.setKey({json.dumps(key)})")
        self.key_input.set_value("")
        await self.use_key(key)

    async def forget(self) -> None:
        await ui.run_javascript("return SafeCityMobile.forget()")
        self.ack.set_visibility(False)
        self.show_setup("")

    async def press(self) -> None:
        if not self.key:
            self.show_setup("")
            return
        self.button.disable()
        self.ack.set_visibility(False)
        self.status.classes(replace="text-base text-amber-300 text-center")
        self.status.set_text("Finding your location…")
        try:
            fix = await _locate()
            if fix.error:
                self.status.set_text(
                    f"Location unavailable ({fix.error}): sending your registered address…"
                )
                fix = Fix()
            else:
                self.status.set_text("Sending your alert…")
            try:
                accepted = await base._in_thread(_send_panic, self.runtime, self.key, fix)
            except Unauthenticated as exc:
                self.status.set_text("")
                self.show_setup(exc.message)
                return
            except SafeCityError as exc:
                self.status.set_text(f"Alert NOT sent: {exc.message}. Call 15.")
                return
            self.show_ack(accepted, used_gps=fix.lat is not None)
        finally:
            if self.key:
                self.button.enable()

    def show_ack(self, accepted: PanicAccepted, *, used_gps: bool) -> None:
        self.message.set_text(
            f"{accepted.station_name} has your alert. Stay where you are if it is safe; "
            "police are on the way."
        )
        self.incident.set_text(f"#{accepted.incident_id} (priority {accepted.priority})")
        self.station.set_text(accepted.station_name)
        if accepted.recommended_units:
            r = accepted.recommended_units[0]
            minutes = max(1, round(r.eta_s / 60))
            self.eta.set_text(f"{r.callsign}, about {minutes} min away")
        else:
            self.eta.set_text("being assigned by the control room")
        self.status.set_text(
            "Sent with your phone's location."
            if used_gps
            else "Sent with your registered address (your phone's location was unavailable)."
        )
        self.status.classes(replace="text-base text-green-300 text-center")
        self.ack.set_visibility(True)
        ui.run_javascript("SafeCityMobile.vibrate([200, 100, 200])")


# --------------------------------------------------------------------------- field app


@dataclass
class _Job:
    assignment: AssignmentOut
    incident: IncidentDetail | None
    error: str | None = None


@dataclass
class _FieldState:
    unit: UnitOut
    current: _Job | None
    queued: list[_Job] = field(default_factory=list)


@dataclass
class _Found:
    unit: UnitOut | None


def _unit_of(runtime: Runtime, username: str) -> _Found:
    with runtime.sessions() as session:
        return _Found(registry.unit_for_username(session, username=username))


def _job(session: Session, principal: Principal, a: AssignmentOut) -> _Job:
    try:
        inc = incidents.get_incident(session, incident_id=a.incident_id, actor=principal)
    except SafeCityError as exc:
        return _Job(a, None, exc.message)
    return _Job(a, inc)


def _field_state(runtime: Runtime, principal: Principal, unit_id: int) -> _FieldState:
    with runtime.sessions() as session:
        unit = registry.get_unit(session, unit_id=unit_id)
        active = dispatch.assignments_of(session, unit_id=unit_id, active_only=True)
        current = next((a for a in active if a.status != "queued"), None)
        return _FieldState(
            unit=unit,
            current=_job(session, principal, current) if current else None,
            queued=[_job(session, principal, a) for a in active if a.status == "queued"],
        )


def _ping(runtime: Runtime, unit_id: int, fix: Fix) -> int:
    if fix.lat is None or fix.lon is None:
        raise InvalidInput("no position to send")
    ping = Ping(unit_id=unit_id, lat=fix.lat, lon=fix.lon, speed_kmh=fix.speed_kmh)
    with runtime.sessions() as session:
        n = dispatch.ingest_pings(session, pings=[ping], now=runtime.clock.now())
        session.commit()
    return n


def _field_logout() -> None:
    nicegui_app.storage.user.clear()
    nicegui_app.storage.user["notice"] = "you have logged out"
    ui.navigate.to("/m/field")


def _field_login() -> None:
    notice = nicegui_app.storage.user.pop("notice", None)
    with ui.column().classes("sc-m"):
        with ui.element("div").classes("sc-m-bar"):
            ui.icon("shield", size="md").classes("text-sky-500")
            with ui.column().classes("gap-0"):
                ui.label("SafeCity Field").classes("sc-m-title")
                ui.label("Police officers only").classes("sc-m-sub")
        with ui.column().classes("sc-m-card gap-3"):
            username = ui.input("Username").props(
                "for=field-username outlined autocapitalize=off autocomplete=username"
            )
            username.classes("w-full text-lg")
            password = ui.input("Password", password=True).props(
                "for=field-password outlined autocomplete=current-password"
            )
            password.classes("w-full text-lg")
            error = ui.label("").props("id=field-login-error role=alert").classes("text-red-400")
            if isinstance(notice, str):
                error.set_text(notice[:1].upper() + notice[1:] + ".")

            async def submit() -> None:
                name = str(username.value or "").strip()
                if not name or not password.value:
                    error.set_text("Enter your username and password.")
                    return
                button.disable()
                try:
                    token, who = await base._in_thread(
                        base._login, base._runtime(), name, str(password.value)
                    )
                except Unauthenticated as exc:
                    log.warning("field login refused for %r: %s", name[:64], exc.message)
                    error.set_text(f"Login refused: {exc.message}.")
                    password.set_value("")
                    return
                finally:
                    button.enable()
                nicegui_app.storage.user.update(token=token, username=who.name)
                ui.navigate.to("/m/field")

            password.on("keydown.enter", submit)
            button = ui.button("Log in", on_click=submit).props(
                "id=field-login unelevated no-caps color=light-blue-9"
            )
            button.classes("sc-big-btn")


class _FieldPage:
    """One phone running the field app for the unit of the logged-in officer."""

    def __init__(self, runtime: Runtime, principal: Principal, unit: UnitOut) -> None:
        self.runtime = runtime
        self.principal = principal
        self.unit_id = unit.id
        self.callsign = unit.callsign
        self.state: _FieldState | None = None
        self.dirty = False
        self.incident_ids: set[int] = set()
        self.busy = False
        self.client = ui.context.client
        #: The disposition chosen for an incident, kept while the page re-renders on live
        #: events (a refresh between choosing and clearing had dropped the officer's choice).
        self.chosen_disposition: dict[int, str] = {}

    def build(self) -> None:
        with ui.column().classes("sc-m"):
            with ui.element("div").classes("sc-m-bar"):
                ui.icon("local_police", size="md").classes("text-sky-500")
                with ui.column().classes("gap-0"):
                    ui.label(self.callsign).props("id=field-unit").classes("sc-m-title")
                    ui.label(self.principal.name).classes("sc-m-sub")
                ui.space()
                self.unit_status = _text("", tag="span", classes="sc-m-chip")
                self.unit_status.props["id"] = "field-unit-status"
                ui.button(icon="logout", on_click=_field_logout).props(
                    "id=logout flat round color=grey-5 aria-label='Log out'"
                )
            self.content = ui.column().classes("w-full gap-3").props("id=field-content")
            with ui.column().classes("sc-m-card gap-2"):
                ui.label("My position").classes("text-base font-semibold")
                ui.button(
                    "Send my position", icon="my_location", on_click=self.send_position
                ).props("id=send-position unelevated no-caps color=blue-grey-8").classes(
                    "sc-big-btn"
                )
                self.auto = ui.switch(
                    f"Share my position every {FIELD_PING_S:.0f} s", value=True
                ).props("id=auto-position color=light-blue")
                self.position_status = ui.label("").props("id=position-status")
                self.position_status.classes("sc-m-sub")

    async def refresh(self) -> None:
        if self.busy:
            self.dirty = True
            return
        self.busy = True
        try:
            state = await base._in_thread(_field_state, self.runtime, self.principal, self.unit_id)
        finally:
            self.busy = False
        new = (
            state.current is not None
            and self.state is not None
            and (
                self.state.current is None
                or self.state.current.assignment.id != state.current.assignment.id
            )
        )
        self.state = state
        self.incident_ids = {j.assignment.incident_id for j in [*state.queued]} | (
            {state.current.assignment.incident_id} if state.current else set()
        )
        self.render(state)
        if new and state.current is not None:
            ui.notify(
                f"New job: incident #{state.current.assignment.incident_id}",
                type="warning",
                position="top",
            )
            ui.run_javascript("SafeCityMobile.vibrate([300, 150, 300])")

    def render(self, state: _FieldState) -> None:
        unit = state.unit
        self.unit_status.set_text(STATUS_LABELS.get(unit.status, unit.status.replace("_", " ")))
        self.unit_status.props["data-status"] = unit.status
        self.unit_status.update()
        self.content.clear()
        with self.content:
            if state.current is None:
                with ui.column().classes("sc-m-card gap-1").props("id=field-no-job"):
                    ui.label("No job").classes("sc-m-big")
                    ui.label(
                        "The control room will send your next job here."
                        if unit.status == "available"
                        else f"Your unit is {unit.status.replace('_', ' ')}."
                    ).classes("sc-m-sub")
            else:
                self._job_card(state.current, unit)
            if state.queued:
                with ui.column().classes("sc-m-card gap-1").props("id=field-queued"):
                    ui.label("Next jobs (queued)").classes("text-base font-semibold")
                    for job in state.queued:
                        inc = job.incident
                        what = (
                            f"P{inc.priority} "
                            + base._STATE.categories.get(inc.category, inc.category)
                            if inc
                            else "outside your station"
                        )
                        row = ui.label(f"#{job.assignment.incident_id} · {what}")
                        row.props(f"data-incident-id={job.assignment.incident_id}")
                        row.classes("text-base")
            if state.current is not None and state.current.incident is not None:
                self._history(state.current.incident)

    def _job_card(self, job: _Job, unit: UnitOut) -> None:
        a, inc = job.assignment, job.incident
        card = ui.column().classes("sc-m-card gap-2").props("id=field-job")
        card.props.update(
            {"data-incident-id": str(a.incident_id), "data-assignment-status": a.status}
        )
        with card:
            with ui.row().classes("items-center gap-2 w-full"):
                ui.label("Current job").classes("text-sm uppercase text-slate-400")
                ui.space()
                chip = _text(
                    ASSIGNMENT_LABELS.get(a.status, a.status), tag="span", classes="sc-m-chip"
                )
                chip.props.update({"id": "field-job-status", "data-status": a.status})
            if inc is None:
                ui.label(f"Incident #{a.incident_id}").classes("sc-m-big")
                ui.label(f"{job.error}. Ask the control room on the radio.").classes(
                    "text-amber-300"
                )
            else:
                label = base._STATE.categories.get(inc.category, inc.category)
                with ui.row().classes("items-center gap-2"):
                    _text(
                        f"P{inc.priority}",
                        tag="span",
                        classes=f"sc-prio sc-p{min(max(inc.priority, 1), 4)} text-lg",
                    )
                    ui.label(f"{label} · #{inc.incident_id}").classes("sc-m-big")
                if inc.description:
                    ui.label(inc.description).classes("text-base text-slate-200")
                metres, direction = distance_bearing(unit.lat, unit.lon, inc.lat, inc.lon)
                with ui.element("div").classes("sc-m-kv"):
                    _text("Where", classes="k")
                    _text(
                        (inc.address + " · " if inc.address else "")
                        + f"{inc.lat:.5f}, {inc.lon:.5f}",
                        classes="v",
                    ).props("id=field-location")
                    _text("From you", classes="k")
                    _text(f"{_distance_text(metres)} {direction}", classes="v").props(
                        "id=field-distance"
                    )
                    _text("Received", classes="k")
                    _text(base._local_time(inc.received_at)[1], classes="v")
                    if inc.caller_number:
                        _text("Caller", classes="k")
                        with ui.element("div").classes("v"):
                            ui.link(
                                " ".join(x for x in (inc.caller_name, inc.caller_number) if x),
                                f"tel:{inc.caller_number}",
                            )
                ui.link(
                    "Open in maps", f"geo:{inc.lat:.6f},{inc.lon:.6f}?q={inc.lat:.6f},{inc.lon:.6f}"
                ).props("id=field-nav").classes("text-base")
            self._step_buttons(a)

    def _step_buttons(self, a: AssignmentOut) -> None:
        order = {"assigned": 0, "en_route": 1, "on_scene": 2}
        at = order.get(a.status, 0)
        with ui.row().classes("w-full no-wrap gap-2"):
            en_route = ui.button(
                "En route", icon="directions_car", on_click=lambda: self.step("en_route")
            )
            en_route.props("id=step-en_route unelevated no-caps color=amber-9")
            en_route.classes("sc-big-btn")
            on_scene = ui.button("On scene", icon="place", on_click=lambda: self.step("on_scene"))
            on_scene.props("id=step-on_scene unelevated no-caps color=purple-8")
            on_scene.classes("sc-big-btn")
        if at >= 1:
            en_route.disable()
        if at >= 2:
            on_scene.disable()
        ui.label("Disposition (when clearing)").classes("text-sm text-slate-400 mt-1")

        def remember(e: Any) -> None:
            if e.value:
                self.chosen_disposition[a.incident_id] = e.value
            else:
                self.chosen_disposition.pop(a.incident_id, None)

        self.disposition = (
            ui.toggle(
                DISPOSITIONS,
                value=self.chosen_disposition.get(a.incident_id),
                clearable=True,
                on_change=remember,
            )
            .props("id=field-disposition spread no-caps toggle-color=green-8 color=blue-grey-10")
            .classes("sc-disp w-full flex-wrap")
        )
        ui.button("Cleared", icon="task_alt", on_click=lambda: self.step("cleared")).props(
            "id=step-cleared unelevated no-caps color=green-8"
        ).classes("sc-big-btn")

    def _history(self, inc: IncidentDetail) -> None:
        with ui.column().classes("sc-m-card gap-0").props("id=field-timeline"):
            ui.label("History").classes("text-base font-semibold mb-1")
            for entry in list(reversed(inc.timeline))[:40]:
                with ui.element("div").classes("sc-m-tl"):
                    _text(base._local_time(entry.at)[0], tag="span", classes="t")
                    _text(entry.note or entry.kind.replace("_", " "), tag="span")

    @in_page
    async def step(self, step: str) -> None:
        state = self.state
        if state is None or state.current is None:
            ui.notify("You have no job to report on.", type="warning", position="top")
            return
        incident_id = state.current.assignment.incident_id
        disposition: str | None = None
        if step == "cleared":
            disposition = self.disposition.value if self.disposition.value else None
            if disposition is None:
                ui.notify("Choose a disposition first.", type="warning", position="top")
                return

        def change(session: Session, now: datetime) -> object:
            return dispatch.unit_step(
                session,
                unit_id=self.unit_id,
                step=step,
                actor=self.principal,
                now=now,
                incident_id=incident_id,
                disposition=disposition,
            )

        try:
            await base._in_thread(apply_change, self.runtime, change)
        except SafeCityError as exc:
            ui.notify(exc.message, type="negative", position="top")
            return
        labels = {"en_route": "En route", "on_scene": "On scene", "cleared": "Cleared"}
        ui.notify(f"{labels[step]}: incident #{incident_id}", type="positive", position="top")
        await self.refresh()

    @in_page
    async def send_position(self, *, automatic: bool = False) -> None:
        fix = await _locate(max_age_ms=15_000 if automatic else 0)
        if fix.error:
            self.position_status.set_text(f"Position not sent: {fix.error}.")
            return
        try:
            await base._in_thread(_ping, self.runtime, self.unit_id, fix)
        except SafeCityError as exc:
            self.position_status.set_text(f"Position not sent: {exc.message}.")
            return
        when = base._local_time(self.runtime.clock.now())[0]
        accuracy = f" (±{fix.accuracy_m:.0f} m)" if fix.accuracy_m is not None else ""
        self.position_status.set_text(
            f"Position {'shared' if automatic else 'sent'} at {when}{accuracy}."
        )

    async def auto_position(self) -> None:
        if self.auto.value:
            await self.send_position(automatic=True)

    # ----------------------------------------------------------------- live

    def on_event(self, subject: str, data: dict[str, Any]) -> None:
        if subject.startswith("dispatch."):
            unit_ids = {int(u) for u in data.get("unit_ids", [])}
            if self.unit_id in unit_ids or int(data["incident_id"]) in self.incident_ids:
                self.dirty = True
        elif subject.startswith("incidents."):
            if int(data["incident_id"]) in self.incident_ids:
                self.dirty = True
        elif subject == "units.status" and int(data["id"]) == self.unit_id:
            self.dirty = True

    async def flush(self) -> None:
        if self.dirty and not self.busy:
            self.dirty = False
            await self.refresh()


def _pump(sub: Any, handle: Callable[[str, dict[str, Any]], None]) -> Callable[[], Awaitable[None]]:
    async def pump() -> None:
        for msg in await sub.fetch_async(batch=500, timeout=1.0):
            try:
                handle(msg.subject, msg.data)
            except (KeyError, TypeError, ValueError):
                log.warning("field app: malformed %s event %r", msg.subject, msg.data)
            msg.ack()

    return pump


def register() -> None:
    """Add `/m/panic` and `/m/field` to the console (called by `pages._register_pages`)."""

    @ui.page("/m/panic", title="SafeCity Panic")
    async def panic_page(key: str | None = None) -> None:
        runtime = base._runtime()
        _head()
        page = _PanicPage(runtime)
        ui.timer(0.0, lambda: page.start(key), once=True)

    @ui.page("/m/field", title="SafeCity Field")
    async def field_page() -> RedirectResponse | None:
        principal = await base._current_principal()
        _head()
        if principal is None:
            _field_login()
            return None
        runtime = base._runtime()
        client = ui.context.client
        subs = [runtime.bus.subscribe(s) for s in ("dispatch.>", "incidents.>", "units.status")]

        def close() -> None:
            for sub in subs:
                sub.close()

        client.on_delete(close)
        try:
            found = await base._in_thread(_unit_of, runtime, principal.name)
        except BaseException:
            close()
            raise
        if found.unit is None:
            close()
            _no_unit(principal)
            return None
        page = _FieldPage(runtime, principal, found.unit)
        page.build()
        await page.refresh()
        for sub in subs:
            ui.timer(0.05, _pump(sub, page.on_event))
        ui.timer(0.3, page.flush)
        ui.timer(FIELD_PING_S, page.auto_position)
        ui.timer(3.0, page.auto_position, once=True)
        return None


def _no_unit(principal: Principal) -> Element:
    with ui.column().classes("sc-m") as col:
        with ui.element("div").classes("sc-m-bar"):
            ui.icon("local_police", size="md").classes("text-sky-500")
            ui.label("SafeCity Field").classes("sc-m-title")
            ui.space()
            ui.button(icon="logout", on_click=_field_logout).props(
                "id=logout flat round color=grey-5"
            )
        with ui.column().classes("sc-m-card gap-2").props("id=field-no-unit"):
            ui.label("No unit").classes("sc-m-big")
            ui.label(
                f"Your login {principal.name!r} is not linked to a unit's crew. Ask the "
                "command centre to add you to your unit in the registry."
            ).classes("text-base text-slate-300")
    return col
