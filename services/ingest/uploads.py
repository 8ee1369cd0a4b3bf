"""Reading a multipart upload as a stream, with a byte cap, into a Submission."""

from __future__ import annotations

from aiohttp import BodyPartReader, web

from services.ingest.service import Submission
from shared.naming import split_csv_names
from shared.problems import Problem, problem_type

FIELD_LIMIT = 64 * 1024
CHUNK = 256 * 1024


async def _read_capped(part: BodyPartReader, limit: int, what: str) -> bytes:
    buf = bytearray()
    while chunk := await part.read_chunk(CHUNK):
        buf += chunk
        if len(buf) > limit:
            raise Problem(
                413,
                "Payload Too Large",
                f"{what} is larger than the limit of {limit:,} bytes.",
                type_=problem_type("too-large"),
                limit=limit,
            )
    return bytes(buf)


async def read_submission(request: web.Request, max_bytes: int) -> Submission:
    if not request.content_type.startswith("multipart/form-data"):
        raise Problem(
            415,
            "Unsupported Media Type",
            "Send multipart/form-data with the image in a part named 'file'.",
            type_=problem_type("unsupported-media-type"),
        )
    reader = await request.multipart()
    data: bytes | None = None
    filename: str | None = None
    fields: dict[str, str] = {}
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise Problem(400, "Bad Request", "Nested multipart bodies are not accepted.")
        if part.name == "file":
            if data is not None:
                raise Problem(400, "Bad Request", "Send one part named 'file' per request.")
            filename = part.filename
            data = await _read_capped(part, max_bytes, f"The file {filename or ''}".strip())
        elif part.name in ("tags", "source"):
            fields[part.name] = (await _read_capped(part, FIELD_LIMIT, f"The field '{part.name}'")).decode(
                "utf-8", errors="replace"
            )
        else:
            raise Problem(
                400,
                "Bad Request",
                f"Unknown form field {part.name!r}; the fields are 'file', 'tags' and 'source'.",
                type_=problem_type("unknown-field"),
            )
    if data is None:
        raise Problem(400, "Bad Request", "The request has no part named 'file'.", type_=problem_type("missing-file"))
    source = fields.get("source", "").strip()[:500] or None
    return Submission(data=data, filename=filename, tags=tuple(split_csv_names(fields.get("tags"))), source=source)
