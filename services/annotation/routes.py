"""Annotation's HTTP endpoints. The foundation serves only health, metrics and OpenAPI;
labels, annotations and users arrive with their own issue."""

from __future__ import annotations

from shared.web import Endpoint


def endpoints() -> list[Endpoint]:
    return []
