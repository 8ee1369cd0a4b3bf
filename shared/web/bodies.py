"""Request bodies that are not what their headers say, named once for every service.

The middleware answers an unreadable body (cut short, a Content-Encoding the
bytes do not decode as) with 400 ``malformed-body``; an endpoint that parses
multipart itself answers a body that is not the multipart it claims with 400
``malformed-multipart``.
"""

from __future__ import annotations

from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from shared.problems import Problem, problem_type

# What reading a request's body raises when the body is not what its headers say.
UNREADABLE_BODY = (RequestPayloadError, HttpProcessingError)
# What aiohttp raises on a body that is not the multipart it claims to be: no boundary in the Content-Type,
# a missing first or closing boundary (ValueError), besides a body its headers mislabel.
MALFORMED_MULTIPART = (ValueError, *UNREADABLE_BODY)


def malformed_multipart(exc: Exception, hint: str = "") -> Problem:
    detail = f"The multipart body is malformed: {exc}." + (f" {hint}" if hint else "")
    return Problem(400, "Bad Request", detail, type_=problem_type("malformed-multipart"))
