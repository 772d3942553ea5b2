"""The operators' web console (NiceGUI), mounted on the API server."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from safecity.core.runtime import Runtime


def mount_console(app: FastAPI, runtime: Runtime) -> None:
    """Serve the console pages under `/` of `app` (all assets local: works offline)."""
    from safecity.console.pages import mount

    mount(app, runtime)
