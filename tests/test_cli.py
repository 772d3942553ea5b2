"""The `safecity` command: benchmark output format and clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def _run(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {
        "SAFECITY_DATA_DIR": str(tmp),
        "SAFECITY_CONFIG": str(tmp / "none.toml"),
        "PATH": "/usr/bin:/bin",
    }
    return subprocess.run(
        [sys.executable, "-m", "safecity.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_bench_routing_json(tmp_path: Path) -> None:
    r = _run("bench", "routing", "--json", "--points", "20000", tmp=tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["bulk_lookups_per_s"] > 0 and out["single_lookup_us"] > 0
    assert out["agreement"] == 1.0
    assert set(out["geographies"]) == {"city", "synthetic_1000"}
    assert out["geographies"]["synthetic_1000"]["jurisdictions"] == 1000


def test_production_mode_without_secret_says_what_to_set(tmp_path: Path) -> None:
    r = _run("migrate", tmp=tmp_path)
    assert r.returncode == 2
    assert "SAFECITY_SECRET_KEY" in r.stderr and "Traceback" not in r.stderr
