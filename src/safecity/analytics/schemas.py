"""Analytics inputs and outputs."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

GroupBy = Literal["all", "district", "station", "type"]
Period = Literal["day", "week"]


class ImportOut(BaseModel):
    """What an import did with each row of the file."""

    import_id: int
    dataset: str
    source: str
    tz: str
    rows: int
    imported: int
    bad_date: int = Field(description="Rows skipped: date missing or unreadable")
    bad_coordinates: int = Field(description="Rows skipped: coordinates missing or impossible")
    duplicate_id: int = Field(description="Rows skipped: id already in the file or dataset")
    outside_jurisdiction: int = Field(
        description="Imported incidents that lie outside every police station's area"
    )
    no_jurisdictions_loaded: bool = False
    examples: list[str] = []


class DatasetOut(BaseModel):
    dataset: str
    incidents: int
    first: datetime | None
    last: datetime | None
    tz: str
    types: list[str]


class SeriesPoint(BaseModel):
    start: date
    count: int
    expected: float
    low: float
    high: float
    p_value: float = Field(description="P(a count at least this high) under the model")
    alert: bool


class Series(BaseModel):
    """Counts of one group per period with the model's expected band."""

    group: str
    group_id: int | str | None = None
    period: Period
    model: str = Field(description="poisson or negative binomial, with its seasonality terms")
    dispersion: float = Field(description="negative binomial size k (0: Poisson)")
    points: list[SeriesPoint]


class AlertOut(BaseModel):
    group: str
    group_id: int | str | None = None
    period: Period
    start: date
    count: int
    expected: float
    high: float
    p_value: float
    q_value: float = Field(description="Benjamini-Hochberg adjusted over the groups tested")
    ratio: float
    message: str


class TrendReport(BaseModel):
    dataset: str
    period: Period
    group_by: GroupBy
    series: list[Series]
    alerts: list[AlertOut]
    weekday_profile: list[float] = Field(description="Share of incidents Monday..Sunday")
    hour_profile: list[float] = Field(description="Share of incidents by hour 0..23")
    month_profile: list[float] = Field(description="Share of incidents January..December")


class EvaluationOut(BaseModel):
    id: int
    created_at: datetime
    source: str
    params: dict[str, Any]
    result: dict[str, Any]


class PatrolCellOut(BaseModel):
    rank: int
    cell: int
    lon: float
    lat: float
    expected: float
    share: float = Field(description="Share of the station's expected incidents in this shift")


class PatrolShiftOut(BaseModel):
    station: str
    station_id: int | None = None
    shift: str
    hours: str
    expected_total: float
    cells: list[PatrolCellOut]
