"""Search's HTTP endpoints, declared once for the router and the OpenAPI document."""

from __future__ import annotations

from typing import Any

from services.search import admin_views, similar_views, views
from services.search.domain.params import DATE_RANGES, FACET_COUNTS, FACETS, RANGES, SORTS
from services.search.jobs import Job
from services.search.models import ClusterPage, ImageDetail, SearchPage, SimilarPage
from shared.auth import Permission
from shared.web import Endpoint
from shared.web.endpoints import path_param, query_param

_CSV = {"type": "string", "description": "comma-separated"}


def _search_parameters() -> list[dict[str, Any]]:
    params = [
        query_param("q", "Free text over tags, labels, captions, file names and sources (simple query syntax)", {"type": "string"}),
        query_param("limit", "Page size (1 to the configured maximum, 100 by default)", {"type": "integer"}),
        query_param("cursor", "The `next` value of the previous page (send the same other parameters)", {"type": "string"}),
        query_param("sort", "Order of results", {"type": "string", "enum": sorted(SORTS), "default": "-created_at"}),
        query_param("facets", f"Facets to count on the first page: {', '.join(FACETS)}", _CSV),
        query_param(
            "facet_counts",
            "results (default: every facet counts within the results) or disjunctive (a facet whose own any-of filter "
            "is given — labels, tags, formats, sources — counts within the other filters only, as a multi-select list shows)",
            {"type": "string", "enum": list(FACET_COUNTS)},
        ),
        query_param("labels", "Any of these labels", _CSV),
        query_param("labels_all", "All of these labels", _CSV),
        query_param("labels_none", "None of these labels", _CSV),
        query_param("tags", "Any of these tags", _CSV),
        query_param("formats", "Any of these formats (jpeg, png, ...)", _CSV),
        query_param("sources", "Any of these sources", _CSV),
        query_param("uploaders", "Any of these uploader user ids", _CSV),
        query_param("annotation_types", "Carrying annotations of any of these types (bbox, polygon, mask, ...)", _CSV),
        query_param("has_annotations", "Only images with (true) or without (false) annotations", {"type": "boolean"}),
        query_param("near_duplicate", "Only images ingest found to nearly duplicate another (true) or not (false)", {"type": "boolean"}),
    ]
    for name in RANGES:
        params += [query_param(f"{side}_{name}", f"{side.title()}imum {name} (inclusive)", {"type": "number"}) for side in ("min", "max")]
    for name in DATE_RANGES:
        params += [query_param(f"{name}_{side}", f"{name.title()} {side} (ISO 8601, inclusive)", {"type": "string", "format": "date-time"}) for side in ("from", "to")]
    return params


_SIMILAR = [
    query_param("hash", "Which perceptual hash to compare", {"type": "string", "enum": ["phash", "dhash"], "default": "phash"}),
    query_param("radius", "Hamming radius in bits (default 10 unless k is given)", {"type": "integer", "minimum": 0}),
    query_param("k", "The k nearest images (within the radius, if given)", {"type": "integer", "minimum": 1}),
]


def endpoints() -> list[Endpoint]:
    read, admin = Permission.READ, Permission.ADMIN
    return [
        Endpoint("GET", "/v1/search", views.search, "Search images: free text, filters, facets, sorting, cursor pagination",
                 permission=read, tag="search", parameters=_search_parameters(),
                 responses={200: SearchPage, 400: "Bad parameter: unknown name, bad value, inverted range, page size over the cap, a parameter given twice, bad cursor",
                            410: "The cursor's snapshot is gone (expired, its index dropped, or closed for newer ones): search again from the first page"}),
        Endpoint("GET", "/v1/images/{image_id}", views.get_image,
                 "One image document with labels, annotations and time-limited URLs to its original and thumbnail",
                 permission=read, tag="images", parameters=[path_param("image_id", "The image id (SHA-256 of its bytes)")],
                 responses={200: ImageDetail, 404: "No such image"}),
        Endpoint("GET", "/v1/images/{image_id}/similar", similar_views.similar_to_image,
                 "Images near this one in Hamming distance of a perceptual hash (exact)", permission=read, tag="similarity",
                 parameters=[path_param("image_id", "The image id"), *_SIMILAR],
                 responses={200: SimilarPage, 400: "Bad parameter", 404: "No such image", 503: "The similarity index is loading"}),
        Endpoint("POST", "/v1/search/similar", similar_views.similar_to_upload,
                 "Images near an uploaded image (raw body or multipart field 'file'), with their distances",
                 permission=read, tag="similarity", parameters=_SIMILAR,
                 request_body={"content": {"image/*": {"schema": {"type": "string", "format": "binary"}},
                                           "multipart/form-data": {"schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}}}},
                 responses={200: SimilarPage, 400: "No image sent, a malformed multipart body, or a bad parameter", 422: "Not a decodable image"}),
        Endpoint("GET", "/v1/near-duplicates", similar_views.near_duplicate_clusters,
                 "Near-duplicate clusters: each original with the images that nearly duplicate it", permission=read,
                 tag="similarity", parameters=[query_param("cursor", "The `next` value of the previous page", {"type": "string"})],
                 responses={200: ClusterPage, 400: "Bad cursor"}),
        Endpoint("POST", "/v1/admin/reindex", admin_views.start_reindex,
                 "Rebuild the index from MongoDB and switch the alias atomically (a background job)", permission=admin,
                 tag="admin", responses={202: Job, 409: "A reindex is already running"}),
        Endpoint("POST", "/v1/admin/reconcile", admin_views.start_reconcile,
                 "Compare ids and versions of MongoDB and the index, report drift, repair it (a background job)",
                 permission=admin, tag="admin",
                 parameters=[query_param("repair", "Repair the drift found (default true)", {"type": "boolean"})],
                 responses={202: Job, 409: "A reindex is running"}),
        Endpoint("GET", "/v1/admin/jobs/{job_id}", admin_views.get_job, "An admin job: state, progress, result",
                 permission=admin, tag="admin", parameters=[path_param("job_id", "The job id")],
                 responses={200: Job, 404: "No such job"}),
        Endpoint("GET", "/v1/admin/bus", admin_views.bus_queues, "Messages waiting and parked per service queue",
                 permission=admin, tag="admin", responses={200: '{"queues": [{"queue", "waiting", "parked"}]}'}),
    ]
