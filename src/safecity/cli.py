"""`safecity` command line: demo, serve, import, users, migrate, bench, eval, plan."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from safecity.analytics import commands as analytics_commands
from safecity.core.config import Settings, load_settings
from safecity.core.errors import SafeCityError


def _settings(**overrides: Any) -> Settings:
    return load_settings(**overrides)


def cmd_demo(args: argparse.Namespace) -> int:
    from safecity.sim.serve import run_demo

    return run_demo(_settings(mode="demo"), reset=args.reset)


def cmd_serve(args: argparse.Namespace) -> int:
    from safecity.sim.serve import run_server

    overrides: dict[str, Any] = {} if args.workers is None else {"workers": args.workers}
    return run_server(_settings(**overrides), with_console=not args.no_console)


def cmd_migrate(args: argparse.Namespace) -> int:
    from safecity.core.runtime import build_runtime

    rt = build_runtime(_settings())
    print(f"database at the newest revision: {rt.settings.sqlalchemy_url.split('@')[-1]}")
    rt.close()
    return 0


def _read(path: str) -> str:
    p = Path(path)
    if not p.is_file():
        raise SafeCityError(f"file not found: {path}")
    try:
        return p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise SafeCityError(f"{path} is not UTF-8 text") from None


def cmd_import(args: argparse.Namespace) -> int:
    from safecity.core.db import transaction
    from safecity.core.runtime import build_runtime

    rt = build_runtime(_settings())
    text = _read(args.file)
    now = rt.clock.now()
    try:
        with transaction(rt.sessions) as session:
            if args.what == "geo":
                from safecity.geo import service as geo

                try:
                    doc = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise SafeCityError(f"{args.file} is not valid JSON: {exc}") from None
                report = geo.import_geojson(
                    session, doc=doc, level=args.level, make_valid=args.make_valid, now=now
                )
                for w in report.warnings:
                    print(f"warning: {w}")
                print(f"{args.level}: {report.created} created, {report.updated} updated")
            else:
                from safecity.registry import service as registry

                fmt = "geojson" if args.file.lower().endswith(("json", "geojson")) else "csv"
                fn = registry.import_sites if args.what == "sites" else registry.import_cameras
                result = fn(session, text=text, fmt=fmt, now=now)
                print(f"{args.what}: {result.created} created, {result.updated} updated")
    finally:
        rt.close()
    return 0


def cmd_user_add(args: argparse.Namespace) -> int:
    import getpass

    from safecity.core.auth import create_user
    from safecity.core.db import transaction
    from safecity.core.runtime import build_runtime

    rt = build_runtime(_settings())
    password = args.password or getpass.getpass(f"password for {args.username}: ")
    try:
        with transaction(rt.sessions) as session:
            create_user(
                session,
                username=args.username,
                password=password,
                role=args.role,
                full_name=args.full_name or "",
                scope_level=args.scope_level,
                scope_id=args.scope_id,
                now=rt.clock.now(),
            )
    finally:
        rt.close()
    print(f"user {args.username} ({args.role}) created")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    if args.what == "video":
        from safecity.video.bench import run_video_bench_cli, summary

        video = run_video_bench_cli(
            # A benchmark serves nothing and signs nothing: it needs no secret key.
            _settings(mode="demo"),
            videos=args.video or [],
            seconds=args.seconds,
            fps=args.fps,
            model_dir=args.model_dir,
        )
        print(json.dumps(video) if args.json else summary(video))
        return 0
    if args.what == "cad":
        from safecity.sim.bench_cad import BenchSetupError, run_cad_bench, summary_line

        try:
            result = run_cad_bench(
                duration=args.duration,
                rate=args.rate,
                kill=args.kill,
                url=args.url,
                workers=args.workers,
                keep=args.keep,
                server_processes=args.server_processes,
                username=args.user,
                password=args.password or os.environ.get("SAFECITY_BENCH_PASSWORD"),
            )
        except BenchSetupError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(json.dumps(result) if args.json else summary_line(result))
        return 0
    from safecity.sim.bench import run_bench

    result = run_bench(args.what, n_points=args.points)
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k}: {json.dumps(v, indent=2) if isinstance(v, dict) else v}")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    import logging

    from safecity.core.runtime import build_runtime
    from safecity.video.worker import WorkerOptions, run_worker

    settings = _settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    rt = build_runtime(settings)
    try:
        return run_worker(
            rt,
            WorkerOptions(
                index=args.index,
                count=args.count,
                model_dir=args.model_dir,
                backend=args.backend,
                retention_days=args.retention_days,
            ),
        )
    finally:
        rt.close()


def cmd_models_fetch(args: argparse.Namespace) -> int:
    from safecity.vision import modelstore
    from safecity.vision.errors import VisionError

    settings = _settings()
    model_dir = args.dir or modelstore.default_model_dir(settings.data_dir)
    urls: dict[str, tuple[str, ...]] | None = (
        {modelstore.DEFAULT_DETECTOR: (str(args.url),)} if args.url else None
    )
    try:
        done = modelstore.fetch(model_dir, force=args.force, urls=urls)
    except VisionError as exc:
        raise SafeCityError(exc.message) from None
    for name, path, what in done:
        print(f"{name}: {path}: {what}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="safecity", description="SafeCity command and control")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser(
        "demo", help="build the demo province (once) and serve it with the simulator"
    )
    d.add_argument("--reset", action="store_true", help="delete the demo database and rebuild it")
    d.set_defaults(func=cmd_demo)

    s = sub.add_parser("serve", help="serve the API and the console")
    s.add_argument("--no-console", action="store_true", help="serve the API only")
    s.add_argument(
        "--workers",
        type=int,
        help="server processes (default SAFECITY_WORKERS, 1); see `workers` in the settings",
    )
    s.set_defaults(func=cmd_serve)

    m = sub.add_parser("migrate", help="bring the database schema to the newest revision")
    m.set_defaults(func=cmd_migrate)

    imp = sub.add_parser("import", help="import geography, sites, cameras or incidents")
    isub = imp.add_subparsers(dest="what", required=True)
    g = isub.add_parser("geo", help="jurisdiction polygons from GeoJSON")
    g.add_argument("file")
    g.add_argument("--level", required=True, choices=["province", "district", "tehsil", "station"])
    g.add_argument(
        "--make-valid",
        action="store_true",
        help="repair invalid polygons (reported as warnings) instead of refusing",
    )
    for what in ("sites", "cameras"):
        x = isub.add_parser(what, help=f"{what} from CSV or GeoJSON points")
        x.add_argument("file")
    imp.set_defaults(func=cmd_import)
    analytics_commands.add_import_parser(isub)

    u = sub.add_parser("user", help="manage users")
    usub = u.add_subparsers(dest="action", required=True)
    ua = usub.add_parser("add", help="create a user")
    ua.add_argument("username")
    ua.add_argument("--role", required=True)
    ua.add_argument("--password", help="prompted for when omitted")
    ua.add_argument("--full-name")
    ua.add_argument(
        "--scope-level", default="all", choices=["all", "province", "district", "tehsil", "station"]
    )
    ua.add_argument("--scope-id", type=int)
    ua.set_defaults(func=cmd_user_add)

    b = sub.add_parser("bench", help="benchmarks (report ratios, not timed tests)")
    b.add_argument("what", choices=["routing", "cad", "video"])
    b.add_argument("--json", action="store_true", help="print one JSON object")
    b.add_argument(
        "--points", type=int, default=1_000_000, help="routing: random points per geography"
    )
    b.add_argument("--duration", type=float, default=60.0, help="cad: seconds of load")
    b.add_argument("--rate", type=float, default=1000.0, help="cad: calls per second offered")
    b.add_argument("--workers", type=int, default=8, help="cad: call-taker client processes")
    b.add_argument(
        "--kill", action="store_true", help="cad: SIGKILL the server half way and restart it"
    )
    b.add_argument(
        "--server-processes",
        type=int,
        default=1,
        help="cad: server processes (SAFECITY_WORKERS of the server it starts)",
    )
    b.add_argument(
        "--url",
        help="cad: a running server instead of starting one (prepared through its API with "
        "an admin's --user and --password)",
    )
    b.add_argument("--user", help="cad with --url: an admin's user name")
    b.add_argument(
        "--password",
        help="cad with --url: that admin's password (or SAFECITY_BENCH_PASSWORD)",
    )
    b.add_argument("--keep", action="store_true", help="cad: keep the data directory")
    b.add_argument(
        "--video",
        action="extend",
        nargs="+",
        metavar="PATH",
        help="video: clips to measure (default: the shared traffic and CCTV clips)",
    )
    b.add_argument("--seconds", type=float, help="video: only the first seconds of each clip")
    b.add_argument("--fps", type=float, default=5.0, help="video: detection rate per camera")
    b.add_argument(
        "--model-dir",
        type=Path,
        help="video: folder with yolox_nano.onnx (default SAFECITY_MODEL_DIR, "
        "data_dir/models, then the shared models)",
    )
    b.set_defaults(func=cmd_bench)

    w = sub.add_parser("worker", help="analyse a share of the registry's cameras (video)")
    w.add_argument("--index", type=int, default=0, help="this worker's number, 0..count-1")
    w.add_argument("--count", type=int, default=1, help="how many workers share the cameras")
    w.add_argument("--model-dir", type=Path, help="default SAFECITY_MODEL_DIR or data_dir/models")
    w.add_argument("--backend", default="onnxruntime", choices=["onnxruntime", "openvino", "auto"])
    w.add_argument(
        "--retention-days",
        type=float,
        default=30.0,
        help="keep event snapshots and clips this many days",
    )
    w.set_defaults(func=cmd_worker)

    mo = sub.add_parser("models", help="detection models")
    msub = mo.add_subparsers(dest="action", required=True)
    mf = msub.add_parser("fetch", help="download the default models (checksums checked)")
    mf.add_argument("--dir", type=Path, help="default SAFECITY_MODEL_DIR or data_dir/models")
    mf.add_argument("--force", action="store_true", help="download again even if present")
    mf.add_argument("--url", help="fetch the detector from this URL (a mirror) instead")
    mf.set_defaults(func=cmd_models_fetch)

    analytics_commands.add_eval_parser(sub)
    analytics_commands.add_plan_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except SafeCityError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
