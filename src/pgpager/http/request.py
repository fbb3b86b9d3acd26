"""Request bodies decoded strictly, in one pass, straight into the route's msgspec struct.

Litestar decodes a JSON body untyped and then converts it leniently (``"10"`` becomes ``10``,
``1.5`` an int); pgpager's routes take their types at their word, as the Upstash routes do.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request

from pgpager.errors import BadRequest, InvalidRequest
from pgpager.services.validation import MAX_JSON_DEPTH


def decode_body(raw: bytes, type_: Any) -> Any:
    """``raw`` JSON as ``type_`` (strict), with each failure a 4xx that says what to change."""
    try:
        return msgspec.json.decode(raw, type=type_)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"invalid request body: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise BadRequest(
            f"the request body nests too deeply to decode; metadata may nest at most "
            f"{MAX_JSON_DEPTH} levels"
        ) from exc


class StrictRequest(Request[Any, Any, Any]):
    """A request whose ``json()`` is the route's body struct, decoded strictly; Litestar then
    passes the struct through unchanged."""

    async def json(self) -> Any:
        field = self.route_handler.parsed_data_field
        target = None if field is None else field.annotation
        if isinstance(target, type) and issubclass(target, msgspec.Struct):
            return decode_body(await self.body(), target)
        return await super().json()
