"""What the ASGI fast paths share: a request's credentials, its body, a JSON answer.

The hottest routes (helpline calls, AVL batches) are answered by ASGI middleware ahead of
FastAPI's routing and dependency solving (see `incidents.api.CallIntakeFastPath`); each
does the same steps as its documented route, with the same principal cache, validation
and error bodies. These are the steps they share."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

from safecity.core.auth import Principal
from safecity.core.deps import principal_for
from safecity.core.errors import InvalidInput, PayloadTooLarge, SafeCityError
from safecity.core.runtime import Runtime


async def request_principal(runtime: Runtime, scope: Scope) -> Principal:
    """Who sent the request (`X-API-Key` or `Authorization: Bearer`), as the routes'
    `CurrentUser` dependency finds it."""
    api_key = token = None
    for name, value in scope["headers"]:
        if name == b"x-api-key":
            api_key = value.decode("latin-1")
        elif name == b"authorization":
            scheme, _, credential = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and credential:
                token = credential.strip()
    return await principal_for(runtime, token=token, api_key=api_key)


async def read_body(receive: Receive, limit: int | None = None, *, what: str = "") -> bytes:
    """The whole request body; past `limit` bytes a `PayloadTooLarge` naming `what`."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise InvalidInput("the client went away before sending the whole request")
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is not None and size > limit:
            raise PayloadTooLarge(f"{what} is at most {limit // 1024} KB of JSON")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def error_answer(exc: SafeCityError) -> tuple[int, bytes]:
    """A refusal as the app's error handler words it: `{error, message}`."""
    return exc.status, json.dumps(exc.to_dict()).encode()


async def send_json(send: Send, status: int, body: bytes) -> None:
    """A complete JSON response (a 401 also names the scheme to log in with)."""
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class PostFastPath:
    """ASGI middleware answering `POST path` itself; every other request goes on to the app.
    A subclass gives `path` and `answer` (the status and JSON body); a refusal raised as a
    `SafeCityError` is answered as the app's error handler answers it."""

    path = ""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        try:
            status, body = await self.answer(scope, receive)
        except SafeCityError as exc:
            status, body = error_answer(exc)
        await send_json(send, status, body)

    async def answer(self, scope: Scope, receive: Receive) -> tuple[int, bytes]:
        raise NotImplementedError
