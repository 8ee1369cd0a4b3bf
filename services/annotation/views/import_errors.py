"""``GET /v1/import-errors``: the imported annotations the service refused, with the reason, so an import's
refusals can be seen (ingest's import counts them among the annotations it sent)."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from pydantic import BaseModel

from services.annotation.deps import DEPS
from services.annotation.views.common import decode_cursor, domain_errors, limit_of, next_cursor
from shared.web.responses import json_response

FILTERS = ("import_id", "dataset")


class ImportErrorOut(BaseModel):
    import_id: str | None = None
    dataset: str
    image_id: str
    source_id: str
    reason: str
    detail: str
    recorded_at: datetime


@domain_errors
async def list_import_errors(request: web.Request) -> web.Response:
    """Refused imported annotations, of one import and/or one dataset, in a stable order (cursor-paginated)."""
    limit = limit_of(request)
    filters = {name: request.query[name] for name in FILTERS if name in request.query}
    records = await request.app[DEPS].annotations.import_errors(filters, decode_cursor(request, ""), limit)
    items = [ImportErrorOut.model_validate(r).model_dump(mode="json") for r in records]
    return json_response({"items": items, "next": next_cursor(records, limit)})
