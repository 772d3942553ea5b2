"""The running system's shared parts, built once from settings and handed to every layer."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from safecity.core.bus import EventBus, make_bus
from safecity.core.clock import Clock, SystemClock
from safecity.core.config import Settings
from safecity.core.db import (
    WalCheckpointer,
    make_engine,
    make_sessionmaker,
    migrate,
    sqlite_file,
)


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    bus: EventBus
    clock: Clock = field(default_factory=SystemClock)
    #: Checkpoints the SQLite file's log off the writers' commits (None on PostgreSQL).
    checkpointer: WalCheckpointer | None = None

    def close(self) -> None:
        self.bus.close()
        self.engine.dispose()
        if self.checkpointer is not None:
            self.checkpointer.stop()


def build_runtime(
    settings: Settings, *, clock: Clock | None = None, run_migrations: bool = True
) -> Runtime:
    """Engine, sessions and bus from `settings`; the schema migrated to the newest revision."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = settings.sqlalchemy_url
    path = sqlite_file(url)
    engine = make_engine(
        url, shared_writers=settings.workers > 1, background_checkpoints=path is not None
    )
    if run_migrations:
        migrate(engine)
    bus = make_bus(settings.bus_url)
    return Runtime(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine, bus),
        bus=bus,
        clock=clock or SystemClock(),
        checkpointer=WalCheckpointer(path) if path is not None else None,
    )
