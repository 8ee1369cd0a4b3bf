"""Ingest's HTTP endpoints, declared once for the router and the OpenAPI document."""

from __future__ import annotations

from services.ingest import views
from services.ingest.domain.model import ImageOut
from shared.auth import Permission
from shared.web import Endpoint
from shared.web.endpoints import path_param

UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {"type": "string", "format": "binary", "description": "The image bytes"},
                    "tags": {"type": "string", "description": "Comma-separated tags, normalised"},
                    "source": {"type": "string", "description": "Where the image comes from (free text, URI)"},
                },
            }
        }
    },
}


def endpoints() -> list[Endpoint]:
    return [
        Endpoint(
            "POST",
            "/v1/images",
            views.upload_image,
            "Upload one image",
            permission=Permission.INGEST,
            tag="images",
            request_body=UPLOAD_BODY,
            responses={
                201: ImageOut,
                200: "The same bytes were already stored: the existing document",
                400: "Malformed form",
                413: "File over the size limit",
                415: "Not multipart/form-data",
                422: "Not an acceptable image; `reason` says why",
            },
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
    ]
