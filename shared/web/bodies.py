"""Request bodies that are not what their headers say, or not what the endpoint takes, named once for
every service.

The middleware answers an unreadable body (cut short, a Content-Encoding the
bytes do not decode as) with 400 ``malformed-body``; an endpoint that parses
multipart itself answers a body that is not the multipart it claims with 400
``malformed-multipart``.
"""

from __future__ import annotations

from typing import TypeVar

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError
from pydantic import BaseModel, ValidationError

from shared.problems import Problem, problem_type

M = TypeVar("M", bound=BaseModel)

# What reading a request's body raises when the body is not what its headers say.
UNREADABLE_BODY = (RequestPayloadError, HttpProcessingError)
# What aiohttp raises on a body that is not the multipart it claims to be: no boundary in the Content-Type,
# a missing first or closing boundary (ValueError), besides a body its headers mislabel.
MALFORMED_MULTIPART = (ValueError, *UNREADABLE_BODY)


def malformed_multipart(exc: Exception, hint: str = "") -> Problem:
    detail = f"The multipart body is malformed: {exc}." + (f" {hint}" if hint else "")
    return Problem(400, "Bad Request", detail, type_=problem_type("malformed-multipart"))


async def body_as(request: web.Request, model: type[M], example: str | None = None) -> M:
    """The request's JSON body as ``model``; else 422 ``invalid-body`` with pydantic's errors as a list of
    ``{loc, msg}`` (JSON that does not parse included), the same answer from every service."""
    try:
        return model.model_validate_json(await request.read())
    except ValidationError as exc:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors(include_url=False)]
        hint = f" Send JSON like {example}." if example else ""
        raise Problem(
            422, "Invalid request body", f"The JSON body does not match the schema; see 'errors'.{hint}",
            type_=problem_type("invalid-body"), errors=errors,
        ) from None  # fmt: skip
