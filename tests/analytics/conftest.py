"""The analytics tests' shared helpers (`analytics_helpers`) are importable by name."""

import sys
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent))  # after tests/: its conftest wins
