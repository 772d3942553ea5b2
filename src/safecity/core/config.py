"""One typed configuration, read from `safecity.toml` and `SAFECITY_*` environment variables.

Environment variables win over the file. Unknown keys are refused (a typo in a config file
must not silently fall back to a default), and every error names the exact key."""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from safecity.core.errors import ConfigError

#: Secrets that must never protect a real deployment.
_WEAK_SECRETS = {"", "changeme", "change-me", "secret", "safecity", "demo"}


def _config_file() -> Path:
    return Path(os.environ.get("SAFECITY_CONFIG", "safecity.toml"))


class Settings(BaseSettings):
    """SafeCity settings. Each field is also `SAFECITY_<NAME>` in the environment."""

    model_config = SettingsConfigDict(
        env_prefix="SAFECITY_",
        extra="forbid",
        validate_default=True,
    )

    mode: Literal["demo", "production"] = Field(
        "production",
        description="`demo` allows generated secrets and demo passwords; "
        "`production` refuses them.",
    )
    data_dir: Path = Field(
        Path("var"), description="Directory for the SQLite file, snapshots and generated keys."
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL. Empty: an SQLite file `safecity.db` in data_dir (WAL mode). "
        "PostgreSQL: postgresql+psycopg://user:pass@host/db",
    )
    bus_url: str = Field(
        "memory://",
        description="Event bus: `memory://` (in-process, the embedded default), "
        "`sqlite:///PATH` (shared by the server processes of one machine; chosen by itself "
        "when `workers` > 1) or nats://host:4222.",
    )
    host: str = Field("127.0.0.1", description="Address the server listens on.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port of the API and the console.")
    workers: int = Field(
        1,
        ge=1,
        le=32,
        description="Server processes. 1: everything in one process (the embedded default). "
        "N > 1: N - 1 more processes serve the API (calls, AVL, live streams) beside the "
        "main one, sharing the database and the event bus: on `port` when the console is "
        "off, else on `api_port` (the console stays in the main process).",
    )
    api_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="TCP port the API worker processes share when `workers` > 1 and the "
        "console is on (default: port + 1). Route /api/ there in the reverse proxy.",
    )
    secret_key: SecretStr | None = Field(
        None,
        description="Key that signs access tokens. Required outside demo mode; in demo mode a "
        "random key is generated once and kept in data_dir.",
    )
    access_token_minutes: int = Field(
        12 * 60, ge=1, le=7 * 24 * 60, description="Lifetime of an access token (one shift)."
    )
    demo_password: SecretStr | None = Field(
        None, description="Password of every demo login; generated and printed when unset."
    )
    demo_seed: int = Field(7, description="Seed of the deterministic demo province.")
    simulate: bool = Field(True, description="Run the demo simulator (calls, moving units).")
    sim_calls_per_minute: float = Field(
        6.0, ge=0, le=6000, description="Rate of simulated helpline calls in the demo."
    )
    basemap_tile_url: str | None = Field(
        None,
        description="XYZ tile URL template for the console map, e.g. a local tile server "
        "http://tiles.local/{z}/{x}/{y}.png. Empty: jurisdictions on a plain background.",
    )
    shared_dir: Path = Field(
        Path("../shared"), description="Folder of shared real data and models (tests, benches)."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Logging level."
    )

    _signing_key: str | None = PrivateAttr(None)

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        if not v.startswith(("sqlite", "postgresql")):
            raise ValueError("must start with sqlite:// or postgresql+psycopg://")
        return v

    @field_validator("bus_url")
    @classmethod
    def _known_bus(cls, v: str) -> str:
        if not v.startswith(("memory://", "sqlite:///", "nats://")):
            raise ValueError("must be memory://, sqlite:///PATH or nats://host:port")
        return v

    @model_validator(mode="after")
    def _refuse_weak_secret_outside_demo(self) -> Settings:
        if self.mode == "production":
            key = self.secret_key.get_secret_value() if self.secret_key else ""
            if key.lower() in _WEAK_SECRETS or len(key) < 32:
                raise ValueError(
                    "secret_key: production mode needs SAFECITY_SECRET_KEY of at least 32 "
                    "random characters (python -c 'import secrets; print(secrets.token_urlsafe"
                    "(48))'), or set SAFECITY_MODE=demo for a demonstration"
                )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_config_file())
        return (init_settings, env_settings, toml)

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'safecity.db').resolve()}"

    def signing_key(self) -> str:
        """The token signing key; in demo mode generated once and kept in data_dir."""
        if self.secret_key is not None and self.secret_key.get_secret_value():
            return self.secret_key.get_secret_value()
        if self._signing_key is not None:
            return self._signing_key
        path = self.data_dir / "secret.key"
        if path.exists():
            key = path.read_text().strip()
        else:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            key = secrets.token_urlsafe(48)
            path.write_text(key)
            path.chmod(0o600)
        self._signing_key = key
        return key


def load_settings(**overrides: object) -> Settings:
    """Read and validate settings; raise ConfigError naming each wrong key."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "settings"
            env = f"SAFECITY_{key.upper()}" if err["loc"] else ""
            where = f"{key} ({env})" if env else key
            msg = str(err["msg"]).removeprefix("Value error, ")
            problems.append(f"{where}: {msg}")
        raise ConfigError(
            "invalid configuration: " + "; ".join(problems), details=problems
        ) from None
    except Exception as exc:  # a broken TOML file
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"cannot read configuration file {_config_file()}: {exc}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
