"""Who the caller is (``GET /v1/whoami``), and the operator's view of every key's handles over
HTTP (``/v1/admin/handles``, the admin scope): what ``pgpager handles list/stop`` shows, for
the web console."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, delete, get
from litestar.params import Parameter, QueryParameter

from pgpager.http.auth import principal
from pgpager.services.admin import Admin
from pgpager.services.resumable import HandleView
from pgpager.settings import SCOPES
from pgpager.store.sessions import Session

STOP_REASON = "stopped by an operator (HTTP API)"


class WhoAmI(msgspec.Struct):
    key_id: str | None
    """The API key's id; null on a server without API keys."""
    scopes: list[str]
    """What the key may do (an admin key may do everything)."""
    keys_configured: bool


@get("/v1/whoami", opt={"scope": SCOPES}, tags=["system"])
async def whoami(request: Request[Any, Any, Any]) -> WhoAmI:
    """The caller's API key and the scopes it has, so a client can offer only what it may do."""
    caller = principal(request)
    keys = bool(request.app.state.runtime.auth.keys)
    return WhoAmI(caller.key_id, [s for s in SCOPES if caller.allows(s)], keys)


class AdminHandle(msgspec.Struct):
    handle: str
    collection: str
    namespace: str
    state: str
    state_reason: str | None
    phase: str
    position: int
    top_k: int
    filter: str | None
    created_at: dt.datetime
    last_used_at: dt.datetime
    age_seconds: float
    idle_seconds: float
    expires_at: dt.datetime | None
    expires_in_seconds: float | None
    """Null once the handle is closed."""
    owner_instance: str | None
    """The server instance holding its cursor (null: none does; the next request rehydrates)."""
    api_key_id: str | None

    @classmethod
    def of(cls, s: Session) -> AdminHandle:
        v = HandleView.of(s)
        expires_in = v.expires_in_s(s.now)
        return cls(
            handle=v.id,
            collection=v.collection,
            namespace=v.namespace,
            state=v.state,
            state_reason=v.state_reason,
            phase=v.phase,
            position=v.position,
            top_k=v.top_k,
            filter=v.filter,
            created_at=v.created_at,
            last_used_at=v.last_used_at,
            age_seconds=v.age_s,
            idle_seconds=v.idle_s,
            expires_at=v.expires_at,
            expires_in_seconds=None if expires_in is None else round(expires_in, 3),
            owner_instance=v.owner_instance,
            api_key_id=v.api_key_id,
        )


class AdminHandleList(msgspec.Struct):
    handles: list[AdminHandle]


class AdminHandlesController(Controller):
    path = "/v1/admin/handles"
    tags = ["admin"]
    opt = {"scope": "admin"}

    @get("/")
    async def list_handles(
        self,
        admin: Admin,
        # "state" is a name Litestar reserves for the app's state: bound by its query name.
        handle_state: Annotated[
            Literal["active", "exhausted", "stopped", "expired"] | None,
            QueryParameter(name="state"),
        ] = None,
        collection: str | None = None,
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 200,
    ) -> AdminHandleList:
        """Every API key's handles, newest first."""
        found = await admin.list_handles(collection=collection, state=handle_state, limit=limit)
        return AdminHandleList([AdminHandle.of(s) for s in found])

    @delete("/{handle:str}", status_code=200)
    async def stop(self, admin: Admin, handle: str) -> AdminHandle:
        """Stop any key's handle; its server closes the cursor. A closed handle is left as it
        is and returned with its state."""
        await admin.stop_handles([handle], reason=STOP_REASON)
        return AdminHandle.of(await admin.get_handle(handle))
