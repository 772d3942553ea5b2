"""Fixtures of the video analytics tests (helpers in vision_helpers.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).resolve().parent))  # after tests/: its conftest wins

from vision_helpers import StubDetector, real_detector

from safecity.vision.detector import Detector


@pytest.fixture(scope="session")
def detector() -> Detector:
    return real_detector()


@pytest.fixture
def stub_detector() -> StubDetector:
    return StubDetector()
