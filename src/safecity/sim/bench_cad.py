"""`safecity bench cad`: the CAD under a realistic load, over HTTP, from separate processes.

It starts its own server (a fresh data directory, the demo province with 2,000 units) or
uses `--url`, then runs for `--duration` seconds:
- call takers posting helpline calls at `--rate` per second (a share of them duplicates of
  recent calls, a share panic alerts from registered devices),
- dispatchers acknowledging recent incidents (status updates, 5% of the calls' rate on
  top of it),
- an AVL gateway posting GPS pings of 2,000 units in batches,
- a console client subscribed to the live event stream (Server-Sent Events).

It prints calls/s, the latency from sending a call to its event reaching the console client
(p50, p99), pings/s and `lost`: calls answered 201 that are missing from the database
afterwards (or, without --kill, whose event never reached the console). `--kill` sends
SIGKILL to the server half way, restarts it, and checks that every answered call survived
with its timeline and that the response-time timers resume."""

from __future__ import annotations

import http.client
import json
import multiprocessing as mp
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

PASSWORD = "bench-password-1"
EXTRA_UNITS = 1800  # the demo has 200: 2,000 units send GPS


# --------------------------------------------------------------------------- set-up


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare(data_dir: Path, *, short_targets: bool = False) -> dict[str, Any]:
    """Demo province, 2,000 units, machine clients' keys, panic devices. With
    `short_targets` every response target is 10 s, so that alerts fall due during a short
    run (to show the timers resuming after a kill)."""
    from safecity.core.auth import Role, create_service_account
    from safecity.core.config import load_settings
    from safecity.core.runtime import build_runtime
    from safecity.dispatch import service as dispatch
    from safecity.dispatch.schemas import PanicDeviceIn
    from safecity.geo import service as geo
    from safecity.registry import service as registry
    from safecity.registry.schemas import UnitIn
    from safecity.sim.democity import build_demo_city
    from safecity.sim.loader import load_demo_city

    rt = build_runtime(load_settings(mode="demo", data_dir=data_dir))
    try:
        load_demo_city(rt, build_demo_city(), password=PASSWORD, with_cameras=False)
        now = rt.clock.now()
        with rt.sessions() as s, s.begin():
            points = geo.representative_points(s, level="station")
            rng = random.Random(3)
            for i in range(EXTRA_UNITS):
                sid, lon, lat = points[i % len(points)]
                registry.create_unit(
                    s,
                    now=now,
                    unit_in=UnitIn(
                        code=f"BENCH-{i}",
                        callsign=f"B-{i}",
                        kind=rng.choice(["patrol_car", "motorcycle"]),
                        home_station_id=sid,
                        lon=lon + rng.uniform(-0.003, 0.003),
                        lat=lat + rng.uniform(-0.003, 0.003),
                    ),
                )
            _, calls_key = create_service_account(s, name="bench-pbx", role=Role.TELEPHONY, now=now)
            _, disp_key = create_service_account(
                s, name="bench-dispatch", role=Role.DISPATCHER, now=now
            )
            from safecity.core.auth import Principal

            admin = Principal(subject="bench", name="bench", role=Role.ADMIN)
            devices = [
                dispatch.register_panic_device(
                    s,
                    now=now,
                    actor=admin,
                    device_in=PanicDeviceIn(
                        code=f"BENCH-PD-{i}",
                        name=f"Bench device {i}",
                        kind="school",
                        phone="0915550000",
                        lon=points[i][1],
                        lat=points[i][2],
                    ),
                ).device_key
                for i in range(20)
            ]
            units = [u.id for u in registry.list_units(s)]
            if short_targets:
                from safecity.incidents import service as incidents
                from safecity.incidents.schemas import ResponseTargetIn

                ten = ResponseTargetIn(
                    acknowledge_s=10, dispatch_s=10, arrive_s=10, unattended_s=10
                )
                for t in incidents.list_targets(s):
                    incidents.set_target(
                        s, priority=t.priority, area_type=t.area_type, target_in=ten, actor=admin
                    )
        return {
            "points": [(p[1], p[2]) for p in points],
            "calls_key": calls_key,
            "dispatch_key": disp_key,
            "devices": devices,
            "units": units,
        }
    finally:
        rt.close()


def start_server(data_dir: Path, port: int, *, processes: int = 1) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFECITY_")}
    env.update(
        SAFECITY_WORKERS=str(processes),
        SAFECITY_MODE="demo",
        SAFECITY_DATA_DIR=str(data_dir),
        SAFECITY_PORT=str(port),
        SAFECITY_LOG_LEVEL="warning",
        SAFECITY_CONFIG=str(data_dir / "absent.toml"),
    )
    log = open(data_dir / "server.log", "ab")  # noqa: SIM115  (lives as long as the server)
    proc = subprocess.Popen(
        [sys.executable, "-m", "safecity.cli", "serve", "--no-console"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    _wait_health(f"http://127.0.0.1:{port}", proc)
    return proc


def _wait_health(url: str, proc: subprocess.Popen[bytes] | None, timeout: float = 60) -> None:
    u = urllib.parse.urlsplit(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            c = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port, timeout=2)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server did not become healthy")


# --------------------------------------------------------------------------- a running server


def _api(
    url: str,
    method: str,
    path: str,
    *,
    body: Any = None,
    form: dict[str, str] | None = None,
    token: str | None = None,
) -> Any:
    """One request to a running server for the preparation (not timed): its JSON answer;
    a refusal raises `RuntimeError` with the server's message."""
    import urllib.error
    import urllib.request

    headers = {"Accept": "application/json"}
    data = None
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            payload = r.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:300]
        raise _Refused(f"{method} {path} answered {exc.code}: {detail}", exc.code) from None
    except OSError as exc:
        raise BenchSetupError(f"{method} {path}: {url} cannot be reached ({exc})") from None
    return json.loads(payload) if payload else None


class BenchSetupError(RuntimeError):
    """A running server (`--url`) could not be prepared for the run: the reason."""


class _Refused(BenchSetupError):
    """A running server answered a preparation request with an error `status`."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def prepare_remote(url: str, *, username: str, password: str) -> dict[str, Any]:
    """What `prepare` makes, made through the API of a running server with an admin's
    login: two machine clients' keys (a PBX and a dispatcher), 20 panic devices and, where
    the server has fewer, units up to 2,000 (codes `BENCH-n`, created once and reused by
    later runs). Station points come from the station layer. Nothing is deleted."""
    import shapely.geometry

    token = _api(
        url, "POST", "/api/v1/auth/token", form={"username": username, "password": password}
    )["access_token"]
    run = f"{int(time.time())}-{os.getpid()}"
    keys = {
        role: _api(
            url,
            "POST",
            "/api/v1/auth/service-accounts",
            body={"name": f"bench-{role}-{run}", "role": role},
            token=token,
        )["api_key"]
        for role in ("telephony", "dispatcher")
    }
    stations = _api(url, "GET", "/api/v1/geo/stations", token=token)["features"]
    if not stations:
        raise BenchSetupError("the server has no police stations: load a geography first")
    points: list[tuple[int, float, float]] = []
    for feature in stations:
        p = shapely.geometry.shape(feature["geometry"]).representative_point()
        points.append((int(feature["properties"]["id"]), float(p.x), float(p.y)))
    devices = [
        _api(
            url,
            "POST",
            "/api/v1/panic-devices",
            body={
                "code": f"BENCH-PD-{run}-{i}",
                "name": f"Bench device {i}",
                "kind": "school",
                "phone": "0915550000",
                "lon": points[i % len(points)][1],
                "lat": points[i % len(points)][2],
            },
            token=token,
        )["device_key"]
        for i in range(20)
    ]
    units = _api(url, "GET", "/api/v1/units", token=token)
    codes = {u["code"] for u in units}
    rng = random.Random(3)
    wanted = EXTRA_UNITS + 200
    for i in range(EXTRA_UNITS):
        if len(units) >= wanted:
            break
        if f"BENCH-{i}" in codes:
            continue
        sid, lon, lat = points[i % len(points)]
        units.append(
            _api(
                url,
                "POST",
                "/api/v1/units",
                body={
                    "code": f"BENCH-{i}",
                    "callsign": f"B-{i}",
                    "kind": rng.choice(["patrol_car", "motorcycle"]),
                    "home_station_id": sid,
                    "lon": lon + rng.uniform(-0.003, 0.003),
                    "lat": lat + rng.uniform(-0.003, 0.003),
                },
                token=token,
            )
        )
    return {
        "points": [(p[1], p[2]) for p in points],
        "calls_key": keys["telephony"],
        "dispatch_key": keys["dispatcher"],
        "devices": devices,
        "units": [u["id"] for u in units],
        "token": token,
    }


def _verify_remote(url: str, token: str, incident_ids: set[int]) -> tuple[int, int]:
    """`_verify` through the API: each answered incident read back (a few threads)."""
    from concurrent.futures import ThreadPoolExecutor

    def check(iid: int) -> tuple[bool, bool]:
        try:
            got = _api(url, "GET", f"/api/v1/incidents/{iid}", token=token)
        except _Refused as exc:
            if exc.status == 404:
                return False, False
            raise
        return True, len(got.get("timeline", [])) >= 2

    ids = sorted(i for i in incident_ids if i > 0)
    with ThreadPoolExecutor(8) as pool:
        found = list(pool.map(check, ids))
    return sum(1 for have, _ in found if not have), sum(1 for have, tl in found if have and not tl)


# --------------------------------------------------------------------------- clients


class _Client:
    """One keep-alive HTTP/1.1 connection that reconnects after a failure.

    Written on a plain socket, not `http.client`: the clients share the machine with the
    server they measure. With `http.client` (headers parsed through the `email` package, a
    buffered reader per answer) the call takers used 335 us of CPU a call, 14% of this
    2-core machine at 850 calls/s; with this client 160 us (8%). It sends each request with
    one `sendall` and reads the answer's head and its `Content-Length` (or chunked) body
    straight from the socket."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 80
        self.head = "".join(
            f"{k}: {v}\r\n"
            for k, v in {
                "Host": f"{self.host}:{self.port}",
                "Content-Type": "application/json",
                **headers,
            }.items()
        )
        self.sock: socket.socket | None = None
        self.buf = b""

    def post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        data = json.dumps(body).encode()
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        request = (
            f"POST {path} HTTP/1.1\r\n{self.head}{extra}Content-Length: {len(data)}\r\n\r\n"
        ).encode() + data
        # A kept-alive connection the server closed while idle fails on its next request
        # before the server reads it: like any HTTP client, retry that once, afresh.
        for fresh in (self.sock is None, True):
            try:
                if self.sock is None:
                    self.sock = socket.create_connection((self.host, self.port), timeout=30)
                    self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    self.buf = b""
                self.sock.sendall(request)
                status, payload, close = self._read_response()
                if close:
                    self._drop()
                return status, json.loads(payload) if payload else None
            except (_Closed, BrokenPipeError, ConnectionResetError):
                self._drop()
                if fresh:
                    return 0, None
            except (OSError, ValueError, IndexError):  # a timeout, a malformed answer
                self._drop()
                return 0, None
        return 0, None

    def _read_response(self) -> tuple[int, bytes, bool]:
        """Status, body and whether the server closes the connection after it."""
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            self._fill()
        head, self.buf = self.buf[:end].decode("latin-1"), self.buf[end + 4 :]
        lines = head.split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        close = fields.get("connection", "").lower() == "close"
        if "chunked" in fields.get("transfer-encoding", "").lower():
            return status, self._read_chunked(), close
        return status, self._take(int(fields.get("content-length", "0"))), close

    def _read_chunked(self) -> bytes:
        body = b""
        while True:
            while (eol := self.buf.find(b"\r\n")) < 0:
                self._fill()
            size = int(self.buf[:eol].split(b";", 1)[0], 16)
            self.buf = self.buf[eol + 2 :]
            chunk = self._take(size + 2)[:size]  # each chunk ends with CRLF
            if size == 0:
                return body  # (no trailers are sent by our server)
            body += chunk

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _fill(self) -> None:
        assert self.sock is not None
        chunk = self.sock.recv(65536)
        if not chunk:
            raise _Closed
        self.buf += chunk

    def _drop(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = None
        self.buf = b""


class _Closed(ConnectionError):
    """The server closed the connection before a whole answer came."""


#: Status updates sent beside the calls, per call.
STATUS_UPDATES_PER_CALL = 0.05

#: Call-taker connections per client process: each waits for its answer before the next
#: call, so the offered rate needs rate x latency connections in flight.
CONNECTIONS_PER_WORKER = 4


def _call_worker(
    url: str, cfg: dict[str, Any], rate: float, start: float, deadline: float, seed: int, out: Any
) -> None:
    """One client process: several call takers, each on its own connection (thread)."""
    import threading

    results: list[list[tuple[float, float, int, int, str]]] = []
    threads = [
        threading.Thread(
            target=lambda k=k: results.append(
                _call_taker(url, cfg, rate / CONNECTIONS_PER_WORKER, start, deadline, seed * 10 + k)
            )
        )
        for k in range(CONNECTIONS_PER_WORKER)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put(("calls", [c for r in results for c in r]))


def _call_taker(
    url: str, cfg: dict[str, Any], rate: float, start: float, deadline: float, seed: int
) -> list[tuple[float, float, int, int, str]]:
    rng = random.Random(seed)
    time.sleep(max(0.0, start - time.monotonic()))  # the console client connects first
    calls = _Client(url, {"X-API-Key": cfg["calls_key"]})
    disp = _Client(url, {"X-API-Key": cfg["dispatch_key"]})
    panic = _Client(url, {})
    cats = [
        "robbery",
        "snatching",
        "assault",
        "traffic_accident",
        "harassment",
        "suspicious",
        "prank",
        "other",
        "vehicle_theft",
        "fire",
    ]
    recent: list[tuple[float, float, str, int]] = []
    sent: list[tuple[float, float, int, int, str]] = []  # t_send, t_done, status, id, kind
    interval = 1.0 / rate
    next_t = time.monotonic() + rng.uniform(0, interval)
    n = 0
    while True:
        now = time.monotonic()
        if now >= deadline:
            break
        if now < next_t:
            time.sleep(next_t - now)
        next_t += interval
        n += 1
        if rng.random() < STATUS_UPDATES_PER_CALL and recent:
            # A dispatcher acknowledges a recent incident: on top of the calls' rate, so
            # that `--rate` is the calls (and panic presses) offered.
            _, _, _, iid = rng.choice(recent)
            t0 = time.monotonic()
            status, _ = disp.post(f"/api/v1/incidents/{iid}/status", {"status": "acknowledged"})
            sent.append((t0, time.monotonic(), status, iid, "status"))
        roll = rng.random()
        t0 = time.monotonic()
        if roll < 0.01:  # a panic press
            lon, lat = rng.choice(cfg["points"])
            status, body = panic.post(
                "/api/v1/panic",
                {"lat": lat, "lon": lon},
                {"X-Device-Key": rng.choice(cfg["devices"])},
            )
            sent.append(
                (t0, time.monotonic(), status, (body or {}).get("incident_id", -1), "panic")
            )
            continue
        if roll < 0.11 and recent:  # a second caller reports the same event
            lon, lat, cat, _ = rng.choice(recent)
            lon += rng.uniform(-0.0005, 0.0005)
        else:
            lon, lat = rng.choice(cfg["points"])
            lon += rng.uniform(-0.02, 0.02)
            lat += rng.uniform(-0.02, 0.02)
            cat = rng.choice(cats)
        status, body = calls.post(
            "/api/v1/calls",
            {
                "caller_number": f"03{rng.randint(0, 4)}{rng.randint(10**7, 10**8 - 1)}",
                "lat": lat,
                "lon": lon,
                "category": cat,
                "description": "bench call",
                "external_id": f"bench-{seed}-{n}",
            },
        )
        t1 = time.monotonic()
        if status == 201 and body:
            kind = "linked" if body.get("linked_to_existing") else "call"
            sent.append((t0, t1, status, body["incident_id"], kind))
            if kind == "call":
                recent.append((lon, lat, cat, body["incident_id"]))
                recent = recent[-50:]
        else:
            sent.append((t0, t1, status, -1, "call"))
    return sent


def _ping_worker(
    url: str,
    cfg: dict[str, Any],
    batches_per_s: float,
    batch: int,
    start: float,
    deadline: float,
    seed: int,
    out: Any,
) -> None:
    rng = random.Random(seed)
    time.sleep(max(0.0, start - time.monotonic()))
    client = _Client(url, {"X-API-Key": cfg["dispatch_key"]})
    units = cfg["units"]
    pos = {u: rng.choice(cfg["points"]) for u in units}
    ok = failed = 0
    interval = 1.0 / batches_per_s
    next_t = time.monotonic()
    while time.monotonic() < deadline:
        now = time.monotonic()
        if now < next_t:
            time.sleep(next_t - now)
        next_t += interval
        body = []
        for u in rng.sample(units, batch):
            lon, lat = pos[u]
            lon, lat = lon + rng.uniform(-1e-4, 1e-4), lat + rng.uniform(-1e-4, 1e-4)
            pos[u] = (lon, lat)
            body.append({"unit_id": u, "lat": lat, "lon": lon})
        status, _ = client.post("/api/v1/units/locations", body)
        if status == 202:
            ok += batch
        else:
            failed += batch
    out.put(("pings", (ok, failed)))


def _subscriber(url: str, key: str, ready: Any, stop: Any, out: Any) -> None:
    """A console client on the live stream; records when each new incident arrived. Sets
    `ready` once connected (the load starts only then) and runs until `stop`."""
    u = urllib.parse.urlsplit(url)
    seen: dict[int, float] = {}
    deadline = time.monotonic() + 3600  # a safety net: `stop` ends it
    while time.monotonic() < deadline and not stop.is_set():
        try:
            conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port, timeout=5)
            conn.request(
                "GET",
                "/api/v1/events/stream?subjects=incidents.created",
                headers={"X-API-Key": key},
            )
            resp = conn.getresponse()
            if resp.status != 200:
                raise http.client.HTTPException(f"event stream answered {resp.status}")
            ready.set()
            buf = b""
            while not stop.is_set():
                chunk = resp.fp.read1(65536) if resp.fp else b""
                if not chunk:
                    break
                t = time.monotonic()
                buf += chunk
                *events, buf = buf.split(b"\n\n")
                for ev in events:
                    for line in ev.split(b"\n"):
                        if line.startswith(b"data: "):
                            seen.setdefault(json.loads(line[6:])["data"]["incident_id"], t)
        except (OSError, http.client.HTTPException, ValueError):
            time.sleep(0.2)
    out.put(("events", seen))


# --------------------------------------------------------------------------- run


def _pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))]


def run_cad_bench(
    *,
    url: str | None = None,
    duration: float = 60.0,
    rate: float = 1000.0,
    pings_per_s: float = 5000.0,
    kill: bool = False,
    workers: int = 8,
    keep: bool = False,
    server_processes: int = 1,
    username: str | None = None,
    password: str | None = None,
) -> dict[str, Any]:
    """The load on a server of its own (a fresh data directory), or with `url` on a
    running one, prepared through its API with an admin's `username` and `password`
    (there, `lost` is checked through the API too, and `--kill` cannot be used)."""
    proc = None
    if url is None:
        tmp = Path(tempfile.mkdtemp(prefix="safecity-bench-cad-"))
        cfg = prepare(tmp, short_targets=kill)
        port = _free_port()
        proc = start_server(tmp, port, processes=server_processes)
        url = f"http://127.0.0.1:{port}"
    else:
        if kill:
            raise SystemExit("--kill restarts the server it started: it cannot with --url")
        if not username or not password:
            raise SystemExit("--url needs an admin's --user and --password to prepare the run")
        url = url.rstrip("/")
        _wait_health(url, None, timeout=10)
        cfg = prepare_remote(url, username=username, password=password)
        tmp = Path(tempfile.mkdtemp(prefix="safecity-bench-cad-"))
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    ready, stop = ctx.Event(), ctx.Event()
    sub_proc = ctx.Process(target=_subscriber, args=(url, cfg["dispatch_key"], ready, stop, out))
    sub_proc.start()
    if not ready.wait(120):
        raise RuntimeError("the console client could not subscribe to the event stream")
    start = time.monotonic() + 3.0  # the client processes are spawned meanwhile
    deadline = start + duration
    procs = [
        ctx.Process(
            target=_call_worker, args=(url, cfg, rate / workers, start, deadline, 1000 + i, out)
        )
        for i in range(workers)
    ]
    batch = 100
    ping_workers = 2
    procs += [
        ctx.Process(
            target=_ping_worker,
            args=(
                url,
                cfg,
                pings_per_s / batch / ping_workers,
                batch,
                start,
                deadline,
                50 + i,
                out,
            ),
        )
        for i in range(ping_workers)
    ]
    for p in procs:
        p.start()
    time.sleep(max(0.0, start - time.monotonic()))
    cpu_at_start = _cpu_s(proc.pid) if proc is not None else 0.0
    restarted_at = None
    if kill:
        time.sleep(max(0.0, start + duration / 2 - time.monotonic()))
        assert proc is not None
        children = _children(proc.pid)  # API worker processes, with --server-processes
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed_wall = datetime.now(UTC)
        orphans = _still_running(children, wait_s=5.0)
        restarted_at = time.monotonic()
        proc = start_server(
            tmp, int(urllib.parse.urlsplit(url).port or 0), processes=server_processes
        )
        restart_s = time.monotonic() - restarted_at
    results: dict[str, Any] = {}
    calls: list[tuple[float, float, int, int, str]] = []
    ok_pings = failed_pings = 0
    for _ in procs:
        kind, value = out.get(timeout=duration + 120)
        if kind == "calls":
            calls += value
        elif kind == "pings":
            ok_pings += value[0]
            failed_pings += value[1]
    # The server's CPU over the load (its work per call, less noisy than the rates on a
    # shared machine); not across a kill.
    server_cpu = _cpu_s(proc.pid) - cpu_at_start if proc is not None and not kill else None
    time.sleep(3.0)  # the last calls' events are still on their way
    stop.set()
    kind, value = out.get(timeout=60)
    results["events"] = value
    for p in [*procs, sub_proc]:
        p.join(timeout=10)
    seen: dict[int, float] = results.get("events", {})
    created = [c for c in calls if c[2] == 201 and c[4] in ("call", "panic")]
    answered = [c for c in calls if c[2] == 201 and c[4] in ("call", "panic", "linked")]
    lat_ms = [(seen[c[3]] - c[0]) * 1000 for c in created if c[3] in seen]
    resp_ms = [(c[1] - c[0]) * 1000 for c in answered]
    time.sleep(1.0)
    if proc is not None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    answered_ids = {c[3] for c in answered}
    if proc is None:
        missing, no_timeline = _verify_remote(url, cfg["token"], answered_ids)
    else:
        missing, no_timeline = _verify(tmp, answered_ids)
    unseen = [] if kill else [c for c in created if c[3] not in seen]
    lost_events = len(unseen)
    summary: dict[str, Any] = {
        "calls_per_s": round(len(answered) / duration, 1),
        "p50_ms": _round(_pct(lat_ms, 0.50)),
        "p99_ms": _round(_pct(lat_ms, 0.99)),
        "response_p50_ms": _round(_pct(resp_ms, 0.50)),
        "response_p99_ms": _round(_pct(resp_ms, 0.99)),
        "pings_per_s": round(ok_pings / duration, 1),
        "lost": missing + no_timeline + lost_events,
        "answered_calls": len(answered),
        "linked_duplicates": sum(1 for c in answered if c[4] == "linked"),
        "panic_alerts": sum(1 for c in answered if c[4] == "panic"),
        "status_updates": sum(1 for c in calls if c[4] == "status" and c[2] == 200),
        "failed_requests": sum(1 for c in calls if c[2] not in (200, 201)),
        "failed_by_status": dict(Counter(str(c[2]) for c in calls if c[2] not in (200, 201))),
        "failed_pings": failed_pings,
        "server_cores": round(server_cpu / duration, 2) if server_cpu else None,
        "server_cpu_ms_per_call": (
            round(server_cpu * 1000 / len(answered), 3) if server_cpu and answered else None
        ),
        "target_rate": rate,
        "duration_s": duration,
        "server_processes": server_processes,
        "kill": kill,
    }
    slow = Counter(int(c[0] - start) for c in answered if c[1] - c[0] > 0.1)
    if slow:  # when answers took over 100 ms: seconds into the run, most first
        summary["slow_answers_by_second"] = dict(slow.most_common(8))
    if unseen:  # what to look at first when events went missing
        summary["unseen_sample"] = [
            {"incident_id": c[3], "kind": c[4], "sent_at_s": round(c[0] - start, 2)}
            for c in unseen[:5]
        ]
    if kill:
        summary["restart_s"] = round(restart_s, 2)
        summary["workers_left_after_kill"] = orphans
        summary.update(_timers_after_restart(tmp, killed_wall))
    if not keep:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    else:
        summary["data_dir"] = str(tmp)
    return summary


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (Linux /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _cpu_s(pid: int) -> float:
    """CPU seconds (user and system) of a process and its children now (Linux /proc; 0
    where there is none)."""
    total = 0
    for p in [pid, *_children(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _still_running(pids: list[int], *, wait_s: float) -> int:
    """How many of `pids` are still running after up to `wait_s` seconds."""
    deadline = time.monotonic() + wait_s
    alive = pids
    while True:
        alive = [p for p in alive if Path(f"/proc/{p}").exists() and not _zombie(p)]
        if not alive or time.monotonic() >= deadline:
            return len(alive)
        time.sleep(0.1)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def _verify(data_dir: Path, incident_ids: set[int]) -> tuple[int, int]:
    """How many answered incidents are missing, and how many lack their timeline."""
    import sqlite3

    db = sqlite3.connect(data_dir / "safecity.db")
    try:
        have = {r[0] for r in db.execute("SELECT id FROM incidents")}
        with_tl = {
            r[0]
            for r in db.execute(
                "SELECT incident_id FROM incident_events GROUP BY incident_id HAVING count(*) >= 2"
            )
        }
    finally:
        db.close()
    ids = {i for i in incident_ids if i > 0}
    return len(ids - have), len((ids & have) - with_tl)


def _timers_after_restart(data_dir: Path, killed: datetime) -> dict[str, Any]:
    """Alerts of incidents taken in before the kill that fired after the restart: the
    timers resumed from the stored timestamps."""
    import sqlite3

    cut = killed.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")
    db = sqlite3.connect(data_dir / "safecity.db")
    try:
        dup = db.execute(
            "SELECT count(*) FROM (SELECT incident_id, level FROM response_alerts "
            "GROUP BY incident_id, level HAVING count(*) > 1)"
        ).fetchone()[0]
        fired = db.execute("SELECT count(*) FROM response_alerts").fetchone()[0]
        resumed = db.execute(
            "SELECT count(*) FROM response_alerts a JOIN incidents i ON i.id = a.incident_id "
            "WHERE i.received_at < ? AND a.fired_at > ?",
            (cut, cut),
        ).fetchone()[0]
    finally:
        db.close()
    return {
        "alerts_fired": fired,
        "alerts_fired_twice": dup,
        "alerts_resumed_after_restart": resumed,
    }


def summary_line(result: dict[str, Any]) -> str:
    return (
        f"calls/s {result['calls_per_s']}, p50 {result['p50_ms']} ms, p99 "
        f"{result['p99_ms']} ms, pings/s {result['pings_per_s']}, lost {result['lost']}"
    )


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(run_cad_bench(duration=float(sys.argv[1]) if len(sys.argv) > 1 else 10)))
