"""How much can any forecast gain at 1% of the area? Non-causal oracles on the Chicago
assaults, beside the shipped blend (src/safecity/analytics/README.md, "Evaluation").

For each week of 2014-2018 it scores, against the naive baseline (past 365 days):
- `same-year oracle`: the counts of the other weeks of the week's own year (the year as it
  turned out, known in advance);
- `oracle + past year`: those plus half of the naive baseline's counts;
- `blend`: the shipped model, from the incidents before the week only.

    SAFECITY_SHARED=/work/shared .venv/bin/python scripts/hotspot_oracles.py
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import numpy as np

from safecity.analytics.evaluate import FRACTIONS, capture, cells_for, prepare_area, weeks
from safecity.analytics.events import day_number, read_csv
from safecity.analytics.forecast import Blend, Naive
from safecity.analytics.grid import boundary_geometry

YEARS = range(2014, 2019)


def main() -> None:
    data = Path(os.environ.get("SAFECITY_SHARED", "../shared")) / "data/crime/chicago"
    incidents, _ = read_csv(data / "aggravated_assaults_2010_2018.csv.gz", tz="America/Chicago")
    boundary = boundary_geometry(json.loads((data / "police_districts_2018.geojson").read_text()))
    area = prepare_area(incidents, cell_m=150, boundary=boundary)
    k = {f: cells_for(f, area.cells) for f in FRACTIONS}
    naive, blend = Naive(), Blend()
    print("gain over naive in PAI at 1% / 5% of the area")
    for year in YEARS:
        s0, s1 = day_number(datetime(year, 1, 1)), day_number(datetime(year + 1, 1, 1))
        wks = list(weeks(area, s0, s1))
        year_counts = np.sum([w.counts for w in wks], axis=0)
        got: dict[str, np.ndarray] = {}
        for w in wks:
            days = w.end - w.start
            base = naive.forecast(w.past, w.start, days)[area.mask]
            preds = {
                "naive": base,
                "same-year oracle": year_counts - w.counts,
                "oracle + past year": year_counts - w.counts + 0.5 * base * 365.0 / days,
                "blend": blend.forecast(w.past, w.start, days)[area.mask],
            }
            for name, pred in preds.items():
                hits = np.array([capture(pred, w.counts, k[f]) for f in FRACTIONS])
                got[name] = got.get(name, np.zeros(len(FRACTIONS))) + hits
        line = ", ".join(
            f"{name} {100 * (h[0] / got['naive'][0] - 1):+.1f}% / "
            f"{100 * (h[1] / got['naive'][1] - 1):+.1f}%"
            for name, h in got.items()
            if name != "naive"
        )
        print(f"{year}: {line}", flush=True)


if __name__ == "__main__":
    main()
