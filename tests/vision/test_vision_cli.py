"""`safecity bench video --json` (on short segments of the real clips) and
`safecity models fetch` (from a local file:// URL; never from the internet in tests)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from vision_helpers import clip, shared_file

from safecity.cli import main

KEYS = {
    "pipeline_fps_per_core",
    "naive_fps_per_core",
    "speedup",
    "recall_vs_naive",
    "cameras_per_core",
    "clips",
}


@pytest.mark.shared
def test_bench_video_json(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SAFECITY_MODEL_DIR", str(shared_file("models", "yolox_nano.onnx").parent))
    monkeypatch.setenv("SAFECITY_MODE", "demo")
    monkeypatch.setenv("SAFECITY_DATA_DIR", str(tmp_path))
    rc = main(
        [
            "bench",
            "video",
            "--json",
            "--seconds",
            "2",
            "--video",
            str(clip("o4n_traffic.mp4")),
            str(clip("bgs_highway_cctv_320x240.avi")),
        ]
    )
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= KEYS
    assert [c["clip"] for c in out["clips"]] == ["o4n_traffic.mp4", "bgs_highway_cctv_320x240.avi"]
    for c in out["clips"]:
        assert c["frames_analysed"] >= 10 and c["naive_detections"] > 0
        assert c["pipeline_fps_per_core"] > 0 and c["naive_fps_per_core"] > 0
        assert 0.0 <= c["recall_vs_naive"] <= 1.0
        assert c["speedup"] == pytest.approx(
            c["pipeline_fps_per_core"] / c["naive_fps_per_core"], rel=0.05
        )
        # Where the time goes: the stages add up to (about) the measured CPU time.
        for key, cpu in (
            ("pipeline_ms_per_frame", "pipeline_cpu_s"),
            ("naive_ms_per_frame", "naive_cpu_s"),
        ):
            stages = c[key]
            assert set(stages) == {
                "decode",
                "motion_and_planning",
                "detector_runtime",
                "detector_pre_post",
                "tracking",
            }
            total_ms = sum(stages.values()) * c["frames_analysed"]
            assert total_ms == pytest.approx(c[cpu] * 1000, rel=0.1, abs=30)
    assert out["cameras_per_core"] == pytest.approx(out["pipeline_fps_per_core"] / 5, rel=0.02)


def test_bench_video_explains_a_missing_clip(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SAFECITY_MODE", "demo")
    monkeypatch.setenv("SAFECITY_DATA_DIR", str(tmp_path))
    assert main(["bench", "video", "--video", str(tmp_path / "none.mp4")]) == 2
    assert "video not found" in capsys.readouterr().err


def test_models_fetch_from_a_local_url(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SAFECITY_MODE", "demo")
    monkeypatch.setenv("SAFECITY_DATA_DIR", str(tmp_path))
    bad = tmp_path / "evil.onnx"
    bad.write_bytes(b"x" * 100)
    assert main(["models", "fetch", "--dir", str(tmp_path / "m"), "--url", f"file://{bad}"]) == 2
    assert "checksum mismatch" in capsys.readouterr().err
    model = shared_file("models", "yolox_nano.onnx")
    assert main(["models", "fetch", "--dir", str(tmp_path / "m"), "--url", f"file://{model}"]) == 0
    assert "ok" in capsys.readouterr().out
    assert (tmp_path / "m" / "yolox_nano.onnx").read_bytes() == model.read_bytes()
