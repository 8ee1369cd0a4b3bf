"""Ingest's HTTP endpoints, declared once for the router and the OpenAPI document."""

from __future__ import annotations

from services.ingest import archive_imports, import_views, views
from services.ingest.domain.model import ImageOut
from services.ingest.import_views import ImportOut, ImportRequest
from services.ingest.results import BatchResult
from services.ingest.views import FetchRequest
from shared.auth import Permission
from shared.web import Endpoint
from shared.web.endpoints import path_param, query_param

TEXT_FIELDS = {
    "tags": {"type": "string", "description": "Comma-separated tags, normalised"},
    "source": {"type": "string", "description": "Where the image comes from (free text, URI)"},
    "sha256": {"type": "string", "description": "Expected SHA-256 of the file: a mismatch is refused"},
    "dataset": {"type": "string"},
    "licence": {"type": "string"},
    "author": {"type": "string"},
}
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Repeat the request safely: the first answer is stored and replayed (header Idempotent-Replayed: true)",
    "schema": {"type": "string", "maxLength": 255},
}


def _multipart(file_field: str, description: str, many: bool) -> dict:
    file_schema = {"type": "string", "format": "binary", "description": description}
    return {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [file_field],
                    "properties": {file_field: {"type": "array", "items": file_schema} if many else file_schema, **TEXT_FIELDS},
                }
            }
        },
    }


ARCHIVE_UPLOAD = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["archive", "kind"],
                "properties": {
                    "kind": {"type": "string", "enum": ["folder", "coco", "yolo", "voc"]},
                    "path": {"type": "string", "description": "Where the dataset starts inside the archive (default: its single top folder, or its root; '.' for the root)"},
                    "dataset": {"type": "string", "description": "Dataset name (default: the archive's name without extension)"},
                    "tags": TEXT_FIELDS["tags"],
                    "licence": {"type": "string"},
                    "author": {"type": "string"},
                    "archive": {"type": "string", "format": "binary", "description": "The archive"},
                },
            }
        }
    },
}


def _json(model) -> dict:
    return {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}


KEY_REUSED = "The Idempotency-Key was first used for a different request"


def keyed(responses: dict) -> dict:
    """``responses`` of an endpoint that takes an Idempotency-Key, with the answers the key adds."""
    merged = {409: "A request with the same Idempotency-Key is still running (`Retry-After` says when to repeat it)", **responses}
    merged[422] = f"{merged[422]}; or: {KEY_REUSED}" if 422 in merged else KEY_REUSED
    return dict(sorted(merged.items()))


def endpoints() -> list[Endpoint]:
    return [
        Endpoint(
            "POST",
            "/v1/images",
            views.upload_image,
            "Upload one image",
            permission=Permission.INGEST,
            tag="images",
            parameters=[IDEMPOTENCY_KEY],
            request_body=_multipart("file", "The image bytes", many=False),
            responses=keyed({
                201: ImageOut,
                200: "The same bytes were already stored: the existing document",
                400: "Malformed form",
                413: "File over the size limit",
                415: "Not multipart/form-data",
                422: "Not an acceptable image; `reason` says why",
            }),
        ),
        Endpoint(
            "POST",
            "/v1/images:batch",
            views.upload_batch,
            "Upload many images in one multipart request; one result per file",
            permission=Permission.INGEST,
            tag="images",
            parameters=[IDEMPOTENCY_KEY],
            request_body=_multipart("files", "One part per image, in order; text fields first", many=True),
            responses=keyed({200: BatchResult, 400: "Malformed form", 413: "The batch is over its total size limit", 415: "Not multipart"}),
        ),
        Endpoint(
            "POST",
            "/v1/images:fetch",
            views.fetch_images,
            "Fetch images by URL (http/https to public addresses only); one result per URL",
            permission=Permission.INGEST,
            tag="images",
            parameters=[IDEMPOTENCY_KEY],
            request_body=_json(FetchRequest),
            responses=keyed({200: BatchResult, 400: "Malformed body"}),
        ),
        Endpoint(
            "GET",
            "/v1/images/{image_id}",
            views.get_image,
            "An image document as ingest stored it",
            permission=Permission.READ,
            tag="images",
            parameters=[path_param("image_id", "The image id (SHA-256 of its bytes)")],
            responses={200: ImageOut, 404: "No such image"},
        ),
        Endpoint(
            "GET",
            "/v1/rejections",
            import_views.get_rejections,
            "Refused inputs, newest first, with reason and message",
            permission=Permission.READ,
            tag="rejections",
            parameters=[
                query_param("reason", "Only this reason code", {"type": "string"}),
                query_param("source_kind", "upload | url | upstream | dataset | folder", {"type": "string"}),
                query_param("import_id", "Only rejections of this import", {"type": "string"}),
                query_param("limit", "Page size (1-500)", {"type": "integer", "default": 50}),
                query_param("cursor", "The `next` of the previous page", {"type": "string"}),
            ],
            responses={200: "`{\"items\": [...], \"next\": cursor | null}`", 400: "Unknown, repeated or bad parameter, or bad cursor"},
        ),
        Endpoint(
            "POST",
            "/v1/imports",
            import_views.create_import,
            "Start a dataset import (folder, COCO, YOLO, Pascal VOC) from a path on the server",
            permission=Permission.INGEST,
            tag="imports",
            parameters=[IDEMPOTENCY_KEY],
            request_body=_json(ImportRequest),
            responses=keyed({202: ImportOut, 400: "Malformed body", 403: "Path outside CORPUS_IMPORT_ROOTS", 422: "Unknown kind or missing path"}),
        ),
        Endpoint(
            "POST",
            "/v1/imports:upload",
            archive_imports.upload_import,
            "Start a dataset import from an uploaded archive (zip, tar, tar.gz/bz2/xz)",
            permission=Permission.INGEST,
            tag="imports",
            parameters=[IDEMPOTENCY_KEY],
            request_body=ARCHIVE_UPLOAD,
            responses=keyed({
                202: ImportOut,
                400: "Malformed form",
                413: "Archive over CORPUS_IMPORT_ARCHIVE_MAX_BYTES",
                415: "Not multipart/form-data",
                422: "Unknown kind; not an archive; an unsafe member (absolute, '..', link); expands past the caps",
                507: "The staging folder (CORPUS_IMPORT_STAGING_DIR) is full or unwritable",
            }),
        ),
        Endpoint(
            "GET",
            "/v1/imports",
            import_views.list_imports,
            "Recent imports, newest first",
            permission=Permission.READ,
            tag="imports",
            parameters=[
                query_param("status", "Only jobs in this state", {"type": "string", "enum": ["queued", "running", "done", "failed"]}),
                query_param("kind", "Only imports of this kind", {"type": "string", "enum": ["folder", "coco", "yolo", "voc"]}),
                query_param("limit", "Page size (1-500)", {"type": "integer", "default": 50}),
                query_param("cursor", "The `next` of the previous page", {"type": "string"}),
            ],
            responses={200: "`{\"items\": [ImportOut, ...], \"next\": cursor | null}`", 400: "Unknown, repeated or bad parameter, or bad cursor"},
        ),
        Endpoint(
            "GET",
            "/v1/imports/{import_id}",
            import_views.get_import,
            "An import's status, progress and counts",
            permission=Permission.READ,
            tag="imports",
            parameters=[path_param("import_id", "The import id")],
            responses={200: ImportOut, 404: "No such import"},
        ),
    ]
