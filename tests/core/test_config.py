"""Configuration: environment and TOML, errors naming the exact key, no weak secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from safecity.core.config import load_settings
from safecity.core.errors import ConfigError

STRONG = "x" * 40


def test_environment_overrides_and_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SAFECITY_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("SAFECITY_PORT", "8123")
    monkeypatch.setenv("SAFECITY_DATA_DIR", str(tmp_path))
    s = load_settings(mode="demo")
    assert s.port == 8123
    assert s.sqlalchemy_url == f"sqlite:///{tmp_path.resolve() / 'safecity.db'}"


def test_toml_file_is_read_and_unknown_keys_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cfg = tmp_path / "safecity.toml"
    cfg.write_text(f'mode = "production"\nsecret_key = "{STRONG}"\nport = 9001\n')
    monkeypatch.setenv("SAFECITY_CONFIG", str(cfg))
    assert load_settings().port == 9001
    cfg.write_text('mode = "demo"\nprot = 9001\n')
    with pytest.raises(ConfigError, match="prot"):
        load_settings()


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"SAFECITY_PORT": "eighty"}, "SAFECITY_PORT"),
        ({"SAFECITY_PORT": "70000"}, "SAFECITY_PORT"),
        ({"SAFECITY_DATABASE_URL": "mysql://x"}, "SAFECITY_DATABASE_URL"),
        ({"SAFECITY_BUS_URL": "kafka://x"}, "SAFECITY_BUS_URL"),
        ({"SAFECITY_WORKERS": "0"}, "SAFECITY_WORKERS"),
        ({"SAFECITY_WORKERS": "many"}, "SAFECITY_WORKERS"),
        ({"SAFECITY_API_PORT": "0"}, "SAFECITY_API_PORT"),
        ({"SAFECITY_MODE": "test"}, "SAFECITY_MODE"),
    ],
)
def test_errors_name_the_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str], key: str
) -> None:
    monkeypatch.setenv("SAFECITY_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("SAFECITY_SECRET_KEY", STRONG)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError, match=key):
        load_settings()


@pytest.mark.parametrize("secret", [None, "changeme", "short-secret"])
def test_production_refuses_default_or_weak_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, secret: str | None
) -> None:
    monkeypatch.setenv("SAFECITY_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.delenv("SAFECITY_SECRET_KEY", raising=False)
    if secret is not None:
        monkeypatch.setenv("SAFECITY_SECRET_KEY", secret)
    with pytest.raises(ConfigError, match="SAFECITY_SECRET_KEY"):
        load_settings(mode="production")


def test_demo_generates_and_keeps_a_signing_key(tmp_path: Path) -> None:
    s = load_settings(mode="demo", data_dir=tmp_path)
    key = s.signing_key()
    assert len(key) >= 32
    assert load_settings(mode="demo", data_dir=tmp_path).signing_key() == key


def test_several_workers_get_the_shared_file_bus(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from safecity.sim.serve import with_worker_bus

    monkeypatch.setenv("SAFECITY_CONFIG", str(tmp_path / "none.toml"))
    one = load_settings(mode="demo", data_dir=tmp_path)
    assert with_worker_bus(one).bus_url == "memory://"
    three = load_settings(mode="demo", data_dir=tmp_path, workers=3)
    assert with_worker_bus(three).bus_url == f"sqlite:///{(tmp_path / 'bus.db').resolve()}"
    chosen = load_settings(mode="demo", data_dir=tmp_path, workers=3, bus_url="sqlite:///x.db")
    assert with_worker_bus(chosen).bus_url == "sqlite:///x.db"
