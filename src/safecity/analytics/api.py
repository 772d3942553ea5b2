"""Analytics routes: datasets, trends and alerts, hotspot / emerging / forecast layers
(GeoJSON), patrol plans (JSON, GeoJSON or a printable HTML sheet), saved evaluations."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response

from safecity.analytics import patrol, service
from safecity.analytics.forecast import MODELS
from safecity.analytics.schemas import (
    AlertOut,
    DatasetOut,
    EvaluationOut,
    GroupBy,
    PatrolShiftOut,
    Period,
    TrendReport,
)
from safecity.core.deps import CurrentUser, SessionDep

router = APIRouter(prefix="/api/v1/analytics", tags=["analytics"])

Dataset = Annotated[str, Query(description="Dataset name (`live`: this system's incidents)")]
Types = Annotated[list[str] | None, Query(alias="type", description="Only these types")]
CellM = Annotated[float, Query(ge=25, le=2000, description="Grid cell size in metres")]


@router.get("/datasets", response_model=list[DatasetOut])
def datasets(session: SessionDep, principal: CurrentUser) -> list[DatasetOut]:
    """Imported histories (and `live`) with their period, size and incident types."""
    return service.list_datasets(session, actor=principal)


@router.get("/models")
def models() -> dict[str, str]:
    """Forecast models and what they do."""
    return {name: (cls.__doc__ or "").strip().split("\n")[0] for name, cls in MODELS.items()}


@router.get("/trends", response_model=TrendReport)
def trend(
    session: SessionDep,
    principal: CurrentUser,
    dataset: Dataset = "history",
    group_by: GroupBy = "all",
    period: Period = "week",
    monitor: Annotated[int, Query(ge=1, le=366, description="Periods tested for alerts")] = 8,
    show: Annotated[int, Query(ge=1, le=2000, description="Periods returned")] = 52,
    end: datetime | None = None,
    types: Types = None,
) -> TrendReport:
    """Counts per group and day or week with the seasonal model's expected band and the
    anomaly alerts of the last `monitor` periods."""
    return service.trend_report(
        session,
        actor=principal,
        dataset=dataset,
        group_by=group_by,
        period=period,
        monitor=monitor,
        show=show,
        end=end,
        types=types,
    )


@router.get("/alerts", response_model=list[AlertOut])
def alerts(
    session: SessionDep,
    principal: CurrentUser,
    dataset: Dataset = "history",
    group_by: GroupBy = "district",
    period: Period = "week",
    monitor: Annotated[int, Query(ge=1, le=366)] = 4,
    end: datetime | None = None,
    types: Types = None,
) -> list[AlertOut]:
    """Unusual rises only (false discovery rate 5% over the groups and periods tested)."""
    return service.trend_report(
        session,
        actor=principal,
        dataset=dataset,
        group_by=group_by,
        period=period,
        monitor=monitor,
        show=monitor,
        end=end,
        types=types,
    ).alerts


@router.get("/hotspots")
def hotspot_map(
    session: SessionDep,
    principal: CurrentUser,
    dataset: Dataset = "history",
    method: Literal["gi", "kde", "counts"] = "gi",
    start: datetime | None = None,
    end: datetime | None = None,
    days: Annotated[int, Query(ge=1, le=3650)] = 365,
    types: Types = None,
    cell_m: CellM = 150.0,
    bandwidth_m: Annotated[float, Query(ge=10, le=5000)] = 200.0,
    radius: Annotated[int, Query(ge=1, le=5)] = 1,
    permutations: Annotated[int, Query(ge=0, le=999)] = 0,
) -> dict[str, Any]:
    """Grid cells as GeoJSON: Gi* hot/cold spots (`bin` -3..3), kernel density or counts."""
    return service.hotspot_layer(
        session,
        actor=principal,
        dataset=dataset,
        start=start,
        end=end,
        days=days,
        types=types,
        cell_m=cell_m,
        method=method,
        bandwidth_m=bandwidth_m,
        radius=radius,
        permutations=permutations,
    )


@router.get("/emerging")
def emerging_map(
    session: SessionDep,
    principal: CurrentUser,
    dataset: Dataset = "history",
    end: datetime | None = None,
    slices: Annotated[int, Query(ge=2, le=104)] = 12,
    slice_days: Annotated[int, Query(ge=1, le=365)] = 28,
    types: Types = None,
    cell_m: CellM = 300.0,
) -> dict[str, Any]:
    """Emerging hotspot categories (new, intensifying, persistent, ...) as GeoJSON."""
    return service.emerging_layer(
        session,
        actor=principal,
        dataset=dataset,
        end=end,
        slices=slices,
        slice_days=slice_days,
        types=types,
        cell_m=cell_m,
    )


@router.get("/forecast")
def forecast_map(
    session: SessionDep,
    principal: CurrentUser,
    dataset: Dataset = "history",
    model: str = "blend",
    week_start: datetime | None = None,
    types: Types = None,
    cell_m: CellM = 150.0,
    top_fraction: Annotated[float, Query(gt=0, le=1)] = 0.05,
) -> dict[str, Any]:
    """The week's risk forecast: the top cells with their expected incidents."""
    return service.forecast_layer(
        session,
        actor=principal,
        dataset=dataset,
        model=model,
        week_start=week_start,
        types=types,
        cell_m=cell_m,
        top_fraction=top_fraction,
    )


@router.get(
    "/patrols",
    response_model=list[PatrolShiftOut],
    responses={200: {"content": {"text/html": {}, "application/geo+json": {}}}},
)
def patrols(
    session: SessionDep,
    principal: CurrentUser,
    dataset: Dataset = "history",
    model: str = "blend",
    week_start: datetime | None = None,
    top: Annotated[int, Query(ge=1, le=100)] = 10,
    cell_m: CellM = 150.0,
    shifts: Annotated[
        str | None, Query(description="e.g. morning=6-14,evening=14-22,night=22-6")
    ] = None,
    types: Types = None,
    format: Literal["json", "html", "geojson"] = "json",
) -> Any:
    """Cells to patrol per station and shift; `format=html` is the printable sheet."""
    plan = service.patrol_plan(
        session,
        actor=principal,
        dataset=dataset,
        model=model,
        week_start=week_start,
        top=top,
        cell_m=cell_m,
        shifts=shifts,
        types=types,
    )
    if format == "html":
        return HTMLResponse(patrol.render_html(plan))
    if format == "geojson":
        import json

        return Response(json.dumps(patrol.plan_geojson(plan)), media_type="application/geo+json")
    return service.plan_out(plan)


@router.get("/evaluations", response_model=list[EvaluationOut])
def evaluations(session: SessionDep, principal: CurrentUser) -> list[EvaluationOut]:
    """Saved `safecity eval hotspots --save` results, newest first."""
    return service.list_evaluations(session, actor=principal)
