"""The running system's shared parts, built once from settings and handed to every layer."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from safecity.core.bus import EventBus, make_bus
from safecity.core.clock import Clock, SystemClock
from safecity.core.config import Settings
from safecity.core.db import make_engine, make_sessionmaker, migrate


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    bus: EventBus
    clock: Clock = field(default_factory=SystemClock)

    def close(self) -> None:
        self.bus.close()
        self.engine.dispose()


def build_runtime(
    settings: Settings, *, clock: Clock | None = None, run_migrations: bool = True
) -> Runtime:
    """Engine, sessions and bus from `settings`; the schema migrated to the newest revision."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.sqlalchemy_url, shared_writers=settings.workers > 1)
    if run_migrations:
        migrate(engine)
    bus = make_bus(settings.bus_url)
    return Runtime(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine, bus),
        bus=bus,
        clock=clock or SystemClock(),
    )
