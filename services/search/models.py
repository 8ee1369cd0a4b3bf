"""Response shapes of the search API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from shared.readmodels import AnnotationOut


class FacetBucket(BaseModel):
    value: str | int | float
    count: int


class SearchPage(BaseModel):
    """One page of search results."""

    total: int
    # "eq": total is exact; "gte": more than the counting cap matched, total is a lower bound.
    total_relation: Literal["eq", "gte"] = "eq"
    items: list[dict[str, Any]]
    # Pass as `cursor` (with the same parameters) to get the next page; null on the last page.
    next: str | None
    # Only when `facets` was asked for, on the first page.
    facets: dict[str, list[FacetBucket]] | None = None


class ImageDetail(BaseModel):
    """An image document from MongoDB with its labels, annotations and time-limited URLs."""

    model_config = ConfigDict(extra="allow")

    id: str
    version: int
    sha256: str
    width: int
    height: int
    format: str
    bytes: int
    tags: list[str] = []
    source: str | None = None
    filename: str | None = None
    phash: str | None = None
    dhash: str | None = None
    created_at: datetime
    # name → annotations carrying it (a search item's ``labels`` is the list of names, its ``label_counts`` this).
    labels: dict[str, int] = {}
    annotation_types: dict[str, int] = {}
    annotation_count: int = 0
    annotations: list[AnnotationOut] = []  # as the annotation API shows them
    original_url: str
    thumbnail_url: str | None = None
    urls_expire_at: datetime


class SimilarImage(BaseModel):
    image_id: str
    distance: int


class SimilarPage(BaseModel):
    """Images near a query image in Hamming distance, nearest first (ties by id); exact, not approximate."""

    hash: Literal["phash", "dhash"]
    query_hash: str
    radius: int | None
    k: int | None
    total: int
    items: list[SimilarImage]
    truncated: bool


class NearDuplicateCluster(BaseModel):
    original: str
    duplicates: list[str]
    size: int


class ClusterPage(BaseModel):
    """Near-duplicate clusters: each original with the images ingest found to nearly duplicate it."""

    items: list[NearDuplicateCluster]
    next: str | None
