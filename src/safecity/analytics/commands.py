"""The analytics part of the `safecity` command: `import incidents`, `eval hotspots`,
`plan patrols`. `safecity.cli` adds these parsers; nothing here imports the CLI."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from safecity.core.errors import InvalidInput


def _add_columns(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("CSV columns (names as in the header, any case)")
    g.add_argument("--date-col", default="date", help="date, or date and time (default: date)")
    g.add_argument("--time-col", help="time of day, when the file has it apart from the date")
    g.add_argument("--lon-col", default="longitude", help="longitude, WGS 84 (default: longitude)")
    g.add_argument("--lat-col", default="latitude", help="latitude, WGS 84 (default: latitude)")
    g.add_argument("--type-col", default="type", help="incident type (optional; default: type)")
    g.add_argument("--id-col", help="the incident's id in the source: repeats are skipped")
    g.add_argument(
        "--date-format",
        help="strptime format when dates are not ISO, e.g. '%%m/%%d/%%Y %%I:%%M:%%S %%p'",
    )
    g.add_argument(
        "--tz",
        help="IANA time zone of dates without a UTC offset, e.g. Asia/Karachi, "
        "America/Chicago (default: UTC; for an import into an existing dataset, its zone)",
    )


def _zone(args: argparse.Namespace) -> str:
    return str(args.tz or "UTC")


def _read(args: argparse.Namespace, path: str, tz: str) -> Any:
    """read_csv with the command's columns, telling stderr what was skipped or adjusted."""
    from safecity.analytics.events import read_csv

    incidents, report = read_csv(path, columns=_columns(args), tz=tz)
    if report.skipped or report.clock_change:
        print(f"{path}: {report.summary()}", file=sys.stderr)
        for ex in report.examples:
            print(f"  {ex}", file=sys.stderr)
    return incidents, report


def _columns(args: argparse.Namespace) -> Any:
    from safecity.analytics.events import ColumnMap

    return ColumnMap(
        date=args.date_col,
        time=args.time_col,
        longitude=args.lon_col,
        latitude=args.lat_col,
        type=args.type_col,
        id=args.id_col,
        date_format=args.date_format,
    )


# --------------------------------------------------------------------------- import


def add_import_parser(isub: Any) -> None:
    """`safecity import incidents FILE.csv ...` under the `import` command."""
    x = isub.add_parser(
        "incidents",
        help="an incident history (CSV) for analytics",
        description="Import past incidents (CSV, plain or .gz) into an analytics dataset. "
        "Rows with a bad date or bad coordinates are skipped and reported; incidents "
        "outside every jurisdiction are kept and counted.",
    )
    x.add_argument("file")
    x.add_argument("--dataset", default="history", help="dataset name (default: history)")
    x.add_argument("--replace", action="store_true", help="delete the dataset's incidents first")
    _add_columns(x)
    x.set_defaults(func=cmd_import_incidents)


def cmd_import_incidents(args: argparse.Namespace) -> int:
    from safecity.analytics import service
    from safecity.analytics.events import read_csv, zone_info
    from safecity.core.config import load_settings
    from safecity.core.db import transaction
    from safecity.core.runtime import build_runtime

    if args.tz:
        zone_info(args.tz)  # an unknown zone is refused before anything is opened
    rt = build_runtime(load_settings())
    try:
        with transaction(rt.sessions) as session:
            # Appending to a dataset: its local times are in its zone unless told otherwise
            # (and a different zone is refused by import_history).
            known = None if args.replace else service.dataset_zone(session, args.dataset)
            tz = args.tz or known or "UTC"
            incidents, report = read_csv(args.file, columns=_columns(args), tz=tz)
            out = service.import_history(
                session,
                incidents=incidents,
                report=report,
                dataset=args.dataset,
                source=Path(args.file).name,
                replace=args.replace,
                now=rt.clock.now(),
                actor="cli",
            )
    finally:
        rt.close()
    print(service.describe_import(out))
    return 0


# --------------------------------------------------------------------------- eval


def add_eval_parser(sub: Any) -> None:
    """`safecity eval hotspots ...`."""
    e = sub.add_parser("eval", help="evaluate analytics models on real data")
    esub = e.add_subparsers(dest="what", required=True)
    h = esub.add_parser(
        "hotspots",
        help="weekly hotspot forecasts scored by hit rate and PAI",
        description="Forecast every week of the period from the incidents before it, for "
        "each model and the naive baseline (past-365-day counts), and score the top 1% and "
        "5% of the area's cells. CSV columns: date (YYYY-MM-DD[ HH:MM]), longitude, "
        "latitude, optional type.",
    )
    h.add_argument("--incidents", required=True, help="CSV file (plain or .gz)")
    h.add_argument("--from", dest="start", required=True, help="first day evaluated")
    h.add_argument("--to", dest="end", required=True, help="last day evaluated (included)")
    h.add_argument(
        "--boundary", help="GeoJSON polygons of the area (default: cells with incidents)"
    )
    h.add_argument("--cell", type=float, default=150.0, help="cell size in metres (default 150)")
    h.add_argument(
        "--model",
        action="append",
        help="model(s) to run beside the naive baseline: naive, prospective, kde, sepp, "
        "blend, or all (default); repeat or separate with commas",
    )
    h.add_argument("--type", action="append", help="only incidents of this type (repeatable)")
    h.add_argument(
        "--history-from", help="ignore incidents before this date (default: use all history)"
    )
    h.add_argument("--json", action="store_true", help="print one JSON object")
    h.add_argument(
        "--save", action="store_true", help="keep the result in the database for the console"
    )
    _add_columns(h)
    h.set_defaults(func=cmd_eval_hotspots)
    t = esub.add_parser(
        "tune-blend",
        help="choose the blend's weights and powers on validation years",
        description="Score every combination of the blend's level half-life, neighbour "
        "weight, season and trend powers on weekly forecasts of each validation year (each "
        "week from the incidents before it), ranked like `eval hotspots` ranks models. Pick "
        "years before the one you report: the shipped constants come from 2014-2017 of the "
        "Chicago assaults, and 2018 is what they are reported on.",
    )
    t.add_argument("--incidents", required=True, help="CSV file (plain or .gz)")
    t.add_argument("--years", required=True, help="validation years: 2014-2017, or 2014,2016,2017")
    t.add_argument(
        "--boundary", help="GeoJSON polygons of the area (default: cells with incidents)"
    )
    t.add_argument("--cell", type=float, default=150.0, help="cell size in metres (default 150)")
    t.add_argument("--type", action="append", help="only incidents of this type (repeatable)")
    t.add_argument("--top", type=int, default=10, help="combinations listed (default 10)")
    t.add_argument("--json", action="store_true", help="print one JSON object")
    _add_columns(t)
    t.set_defaults(func=cmd_tune_blend)


def cmd_eval_hotspots(args: argparse.Namespace) -> int:
    from safecity.analytics.evaluate import evaluate, format_table
    from safecity.analytics.events import parse_date
    from safecity.analytics.forecast import model_names

    t0 = time.perf_counter()
    tz = _zone(args)
    start = parse_date(args.start, tz=tz)
    end = parse_date(args.end, tz=tz, end_of_day=True)
    history_from = parse_date(args.history_from, tz=tz) if args.history_from else None
    boundary = _boundary(args.boundary) if args.boundary else None
    incidents, report = _read(args, args.incidents, tz)
    incidents = incidents.of_type(args.type)
    names = model_names(args.model)
    quiet = args.json

    def progress(msg: str) -> None:
        if not quiet:
            print(msg, file=sys.stderr)

    ev = evaluate(
        incidents,
        start=start,
        end=end,
        models=names,
        cell_m=args.cell,
        boundary=boundary,
        history_from=history_from,
        progress=progress,
    )
    summary = ev.summary()
    summary["meta"]["total_seconds"] = round(time.perf_counter() - t0, 2)
    summary["meta"]["skipped_rows"] = report.skipped
    if args.save:
        _save(args, summary)
    if args.json:
        print(json.dumps(summary))
    else:
        print(format_table(ev))
        print(f"total {summary['meta']['total_seconds']:.1f} s")
    return 0


def parse_years(text: str) -> list[int]:
    """`2014-2017` or `2014,2016` (or both mixed) as a list of years."""
    years: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            if "-" in part:
                a, b = (int(x) for x in part.split("-", 1))
                if b < a:
                    raise ValueError
                years.extend(range(a, b + 1))
            else:
                years.append(int(part))
    except ValueError:
        raise InvalidInput(f"cannot read the years {text!r}; write e.g. 2014-2017") from None
    if not years:
        raise InvalidInput("give at least one validation year, e.g. --years 2014-2017")
    return sorted(set(years))


def cmd_tune_blend(args: argparse.Namespace) -> int:
    from safecity.analytics.tuning import tune_blend

    years = parse_years(args.years)
    boundary = _boundary(args.boundary) if args.boundary else None
    incidents, _ = _read(args, args.incidents, _zone(args))
    incidents = incidents.of_type(args.type)

    def progress(msg: str) -> None:
        if not args.json:
            print(msg, file=sys.stderr)

    tuning = tune_blend(
        incidents, years=years, cell_m=args.cell, boundary=boundary, progress=progress
    )
    summary = tuning.summary(top=args.top)
    if args.json:
        print(json.dumps(summary))
        return 0
    print(
        f"Blend constants on weekly forecasts of {', '.join(map(str, years))} "
        f"({summary['combinations']} combinations, {summary['seconds']:.0f} s); "
        "gains are PAI vs naive, mean over the years"
    )
    print(
        f"{'rank':>4} {'half-life':>9} {'neighbour':>9} {'season':>6} {'trend':>6} "
        f"{'@1%':>7} {'@5%':>7}  per year (1% / 5%)"
    )
    rows = [(i + 1, c) for i, c in enumerate(summary["top"])]
    d = summary["defaults"]
    if d.get("rank") and d["rank"] > len(rows):
        rows.append((d["rank"], d))
    for rank, c in rows:
        p = c["params"]
        years_txt = "  ".join(f"{g1:+.1%}/{g5:+.1%}" for g1, g5 in c["per_year"])
        print(
            f"{rank:>4} {p['half_life_days']:>9g} {p['neighbour_weight']:>9g} "
            f"{p['season_power']:>6g} {p['trend_power']:>6g} {c['gain_1']:>+7.1%} "
            f"{c['gain_5']:>+7.1%}  {years_txt}"
        )
    print(f"shipped defaults: rank {d.get('rank')} of {summary['combinations']}")
    return 0


def _boundary(path: str) -> Any:
    from safecity.analytics.grid import boundary_geometry

    p = Path(path)
    if not p.is_file():
        raise InvalidInput(f"boundary file not found: {path}")
    try:
        doc = json.loads(p.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path} is not a GeoJSON file: {exc}") from None
    return boundary_geometry(doc)


def _save(args: argparse.Namespace, summary: dict[str, Any]) -> None:
    from safecity.analytics import service
    from safecity.core.config import load_settings
    from safecity.core.db import transaction
    from safecity.core.runtime import build_runtime

    rt = build_runtime(load_settings())
    try:
        with transaction(rt.sessions) as session:
            service.save_evaluation(
                session,
                source=Path(args.incidents).name,
                params={
                    "from": args.start,
                    "to": args.end,
                    "cell_m": args.cell,
                    "boundary": Path(args.boundary).name if args.boundary else None,
                    "type": args.type,
                },
                result=summary,
                now=rt.clock.now(),
            )
    finally:
        rt.close()


# --------------------------------------------------------------------------- patrols


def add_plan_parser(sub: Any) -> None:
    """`safecity plan patrols ...`: a printable patrol sheet from a CSV history."""
    pl = sub.add_parser("plan", help="patrol planning from a forecast")
    psub = pl.add_subparsers(dest="what", required=True)
    p = psub.add_parser(
        "patrols",
        help="top cells per station and shift, as a printable HTML sheet",
        description="Forecast the week from the incidents before it and list, for each "
        "station (polygon of --stations) and shift, the cells to patrol.",
    )
    p.add_argument("--incidents", required=True, help="CSV file (plain or .gz)")
    p.add_argument("--stations", required=True, help="GeoJSON polygons, one per station")
    p.add_argument(
        "--name-property", default="name", help="the stations' name property (default: name)"
    )
    p.add_argument("--week", required=True, help="first day of the week planned (YYYY-MM-DD)")
    p.add_argument("--model", default="blend", help="forecast model (default: blend)")
    p.add_argument("--top", type=int, default=10, help="cells per station and shift (default 10)")
    p.add_argument("--cell", type=float, default=150.0, help="cell size in metres (default 150)")
    p.add_argument(
        "--shifts",
        default="morning=6-14,evening=14-22,night=22-6",
        help="shifts as name=from-to hours (default: morning=6-14,evening=14-22,night=22-6)",
    )
    p.add_argument("--type", action="append", help="only incidents of this type (repeatable)")
    p.add_argument("--out", required=True, help="HTML file to write")
    _add_columns(p)
    p.set_defaults(func=cmd_plan_patrols)


def cmd_plan_patrols(args: argparse.Namespace) -> int:
    from safecity.analytics import patrol
    from safecity.analytics.events import parse_date

    stations = _stations(args.stations, args.name_property)
    tz = _zone(args)
    week_start = parse_date(args.week, tz=tz)
    incidents, _ = _read(args, args.incidents, tz)
    plan = patrol.plan_from_polygons(
        incidents.of_type(args.type),
        stations=stations,
        week_start=week_start,
        model=args.model,
        top=args.top,
        cell_m=args.cell,
        shifts=patrol.parse_shifts(args.shifts),
        title=f"Patrol plan: {Path(args.incidents).name}",
    )
    try:
        Path(args.out).write_text(patrol.render_html(plan), encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot write {args.out}: {exc.strerror}") from None
    cells = sum(len(s.cells) for s in plan.stations)
    print(f"{args.out}: {len(plan.stations)} station-shifts, {cells} cells")
    return 0


def _stations(path: str, name_property: str) -> list[tuple[str, Any]]:
    from shapely.geometry import shape

    p = Path(path)
    if not p.is_file():
        raise InvalidInput(f"stations file not found: {path}")
    try:
        doc = json.loads(p.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path} is not a GeoJSON file: {exc}") from None
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        raise InvalidInput(f"{path} must be a GeoJSON FeatureCollection of station areas")
    out = []
    for i, f in enumerate(doc.get("features") or []):
        props = (f.get("properties") if isinstance(f, dict) else None) or {}
        name = props.get(name_property)
        if name is None:
            raise InvalidInput(
                f"feature {i} of {path} has no property {name_property!r}; its properties "
                f"are: {', '.join(props)}. Give --name-property"
            )
        geom = f.get("geometry")
        if not isinstance(geom, dict) or geom.get("type") not in ("Polygon", "MultiPolygon"):
            kind = geom.get("type") if isinstance(geom, dict) else geom
            raise InvalidInput(
                f"feature {i} ({name}) of {path} is a {kind}, not a Polygon or MultiPolygon: "
                "a station's patrol cells are those inside its area"
            )
        try:
            out.append((str(name), shape(geom)))
        except (ValueError, TypeError, AttributeError, IndexError) as exc:
            raise InvalidInput(f"feature {i} ({name}) of {path} is broken: {exc}") from None
    if not out:
        raise InvalidInput(f"{path} holds no features")
    return out
