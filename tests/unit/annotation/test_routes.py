"""Every annotation endpoint is declared once, guarded by a permission, and described in OpenAPI."""

from __future__ import annotations

from services.annotation import routes
from shared.auth import Permission
from shared.web.openapi import build_openapi


def test_every_endpoint_needs_a_permission_and_is_documented():
    endpoints = routes.endpoints()
    assert all(isinstance(ep.permission, Permission) for ep in endpoints)
    document = build_openapi("annotation", "1", endpoints)
    operations = [(path, method) for path, item in document["paths"].items() for method in item]
    assert len(operations) == len(endpoints) == len(set(operations))
    patch = document["paths"]["/v1/annotations/{annotation_id}"]["patch"]
    assert patch["x-permission"] == "annotate" and {"401", "403", "412", "428"} <= set(patch["responses"])
    assert document["paths"]["/v1/users"]["post"]["x-permission"] == "manage_users"
    assert document["paths"]["/v1/labels/{label_id}/merge"]["post"]["x-permission"] == "manage_labels"
    assert "AnnotationOut" in document["components"]["schemas"]
