"""Search's HTTP endpoints, declared once for the router and the OpenAPI document."""

from __future__ import annotations

from services.search import views
from services.search.models import ImageDetail, SearchPage
from shared.auth import Permission
from shared.web import Endpoint
from shared.web.endpoints import path_param, query_param


def endpoints() -> list[Endpoint]:
    return [
        Endpoint(
            "GET",
            "/v1/search",
            views.search,
            "Search images: free text, newest first, cursor pagination",
            permission=Permission.READ,
            tag="search",
            parameters=[
                query_param("q", "Free text over tags, file names and sources (simple query syntax)", {"type": "string"}),
                query_param("limit", "Page size (1 to the configured maximum, 100 by default)", {"type": "integer"}),
                query_param("cursor", "The `next` value of the previous page", {"type": "string"}),
            ],
            responses={200: SearchPage, 400: "Bad parameter: unknown name, bad limit or cursor"},
        ),
        Endpoint(
            "GET",
            "/v1/images/{image_id}",
            views.get_image,
            "One image document with a time-limited URL to its original",
            permission=Permission.READ,
            tag="images",
            parameters=[path_param("image_id", "The image id (SHA-256 of its bytes)")],
            responses={200: ImageDetail, 404: "No such image"},
        ),
    ]
