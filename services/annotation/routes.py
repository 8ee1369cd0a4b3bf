"""Annotation's HTTP endpoints, declared once for the router and the OpenAPI document."""

from __future__ import annotations

from typing import get_args

from services.annotation.domain.model import ExportFormat
from services.annotation.views import annotations as a
from services.annotation.views import exports as ex
from services.annotation.views import import_errors as ie
from services.annotation.views import labels as lb
from services.annotation.views import users as u
from services.annotation.views.labels import LabelOut
from shared.auth import Permission
from shared.readmodels import AnnotationOut
from shared.web import Endpoint
from shared.web.endpoints import path_param, query_param


def _body(description: str) -> dict:
    return {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}, "description": description}


ANN_ID = path_param("annotation_id", "The annotation id")
IF_MATCH = {"name": "If-Match", "in": "header", "required": True, "description": "The ETag (version) you read", "schema": {"type": "string"}}
PAGE = [query_param("limit", "Items per page (1-1000)", {"type": "integer"}), query_param("cursor", "'next' of the previous page", {"type": "string"})]
WRITE = {200: AnnotationOut, 404: "No such annotation", 412: "Stale If-Match: the body holds 'current'", 422: "Invalid", 428: "If-Match missing"}


def annotation_endpoints() -> list[Endpoint]:
    ann = "annotations"
    return [
        Endpoint("POST", "/v1/annotations", a.create_annotation, "Create one annotation", Permission.ANNOTATE, ann,
                 request_body=_body("AnnotationIn"), responses={201: AnnotationOut, 422: "Invalid geometry, label or image; 'reason' says which"}),
        Endpoint("POST", "/v1/annotations/bulk", a.bulk_create, "Create many annotations, one result per item", Permission.ANNOTATE, ann,
                 request_body=_body('{"items": [AnnotationIn, ...]}'), responses={200: "created, failed, results", 413: "Too many items"}),
        Endpoint("POST", "/v1/annotations/bulk-update", a.bulk_update, "Update or delete many annotations, each with its version", Permission.ANNOTATE, ann,
                 request_body=_body('{"items": [{"id", "version", "patch" | "delete": true}, ...]}'), responses={200: "updated, failed, results", 413: "Too many items"}),
        Endpoint("GET", "/v1/annotations/{annotation_id}", a.get_annotation, "One annotation (ETag: its version)", Permission.READ, ann,
                 parameters=[ANN_ID], responses={200: AnnotationOut, 404: "No such annotation"}),
        Endpoint("PATCH", "/v1/annotations/{annotation_id}", a.update_annotation, "Change an annotation (If-Match required)", Permission.ANNOTATE, ann,
                 parameters=[ANN_ID, IF_MATCH], request_body=_body("AnnotationPatch"), responses=WRITE),
        Endpoint("DELETE", "/v1/annotations/{annotation_id}", a.delete_annotation, "Delete an annotation (a new version; history kept)", Permission.ANNOTATE, ann,
                 parameters=[ANN_ID, IF_MATCH], responses=WRITE),
        Endpoint("GET", "/v1/annotations/{annotation_id}/history", a.annotation_history, "Every version: full state, who, when, what changed", Permission.READ, ann,
                 parameters=[ANN_ID, *PAGE], responses={200: "items, next", 404: "No such annotation"}),
        Endpoint("POST", "/v1/annotations/{annotation_id}/revert", a.revert_annotation, "A new version equal to an old one", Permission.ANNOTATE, ann,
                 parameters=[ANN_ID, IF_MATCH], request_body=_body('{"version": n}'), responses=WRITE),
        Endpoint("GET", "/v1/images/{image_id}/annotations", a.image_annotations, "An image's annotations, now or as_of a time", Permission.READ, ann,
                 parameters=[path_param("image_id", "The image id"), query_param("as_of", "ISO 8601 time", {"type": "string"}), *PAGE],
                 responses={200: "items, next", 404: "No such image"}),
    ]  # fmt: skip


def label_endpoints() -> list[Endpoint]:
    lab, label_id = "labels", path_param("label_id", "The label id")
    return [
        Endpoint("GET", "/v1/labels", lb.list_labels, "Labels by name", Permission.READ, lab, parameters=PAGE),
        Endpoint("GET", "/v1/labels/resolve", lb.resolve_label, "The label a name or alias resolves to", Permission.READ, lab,
                 parameters=[query_param("name", "Any spelling: normalised", {"type": "string"}, required=True)], responses={200: LabelOut, 404: "Unknown name"}),
        Endpoint("POST", "/v1/labels", lb.create_label, "Create a label (200 with the existing one if the name resolves)", Permission.MANAGE_LABELS, lab,
                 request_body=_body("LabelIn"), responses={201: LabelOut, 200: "Existing label"}),
        Endpoint("GET", "/v1/labels/{label_id}", lb.get_label, "One label", Permission.READ, lab, parameters=[label_id], responses={200: LabelOut, 404: "No such label"}),
        Endpoint("PATCH", "/v1/labels/{label_id}", lb.update_label, "Rename, describe, re-parent, set external ids", Permission.MANAGE_LABELS, lab,
                 parameters=[label_id], request_body=_body("LabelPatch"), responses={200: LabelOut, 409: "Name taken or cycle"}),
        Endpoint("POST", "/v1/labels/{label_id}/aliases", lb.add_alias, "Add an alias", Permission.MANAGE_LABELS, lab,
                 parameters=[label_id], request_body=_body('{"alias": "..."}'), responses={200: LabelOut, 409: "Name taken"}),
        Endpoint("POST", "/v1/labels/{label_id}/merge", lb.merge_label, "Merge into another label (annotations move, names become aliases)", Permission.MANAGE_LABELS, lab,
                 parameters=[label_id], request_body=_body('{"into": "<label id>"}'), responses={200: LabelOut, 409: "Already merged"}),
    ]  # fmt: skip


def user_endpoints() -> list[Endpoint]:
    usr, user_id = "users", path_param("user_id", "The user id")
    return [
        Endpoint("GET", "/v1/me", u.me, "Who the key belongs to", Permission.READ, usr),
        Endpoint("GET", "/v1/users", u.list_users, "Users", Permission.MANAGE_USERS, usr, parameters=PAGE),
        Endpoint("POST", "/v1/users", u.create_user, "Create a user with a role", Permission.MANAGE_USERS, usr, request_body=_body('{"name", "role"}')),
        Endpoint("GET", "/v1/users/{user_id}", u.get_user, "One user", Permission.MANAGE_USERS, usr, parameters=[user_id]),
        Endpoint("PATCH", "/v1/users/{user_id}", u.update_user, "Change role or disable", Permission.MANAGE_USERS, usr, parameters=[user_id]),
        Endpoint("POST", "/v1/users/{user_id}/keys", u.issue_key, "Issue an API key (shown once)", Permission.MANAGE_USERS, usr, parameters=[user_id]),
        Endpoint("GET", "/v1/users/{user_id}/keys", u.list_keys, "A user's keys (never the keys themselves)", Permission.MANAGE_USERS, usr, parameters=[user_id]),
        Endpoint("DELETE", "/v1/users/{user_id}/keys/{key_id}", u.revoke_key, "Revoke a key", Permission.MANAGE_USERS, usr,
                 parameters=[user_id, path_param("key_id", "The key id from the listing")]),
    ]  # fmt: skip


def export_endpoints() -> list[Endpoint]:
    return [
        Endpoint("POST", "/v1/exports", ex.create_export, "Download images and annotations as COCO, YOLO, YOLO segmentation or pose, VOC or image folders (zip)",
                 Permission.READ, "exports", request_body=_body(f'{{"format": "{"|".join(get_args(ExportFormat))}", "image_ids": [...]}} or {{"dataset": "..."}}'),
                 responses={200: "application/zip", 404: "Unknown image ids", 413: "Too many images",
                            422: "No selection, an unknown format, more classes or objects than VOC's PNGs number, or no one keypoint schema for yolo-pose"}),
    ]  # fmt: skip


def import_error_endpoints() -> list[Endpoint]:
    return [
        Endpoint("GET", "/v1/import-errors", ie.list_import_errors, "Imported annotations refused, with reason and detail", Permission.READ, "imports",
                 parameters=[query_param("import_id", "Only this import's (the id ingest gave it)", {"type": "string"}),
                             query_param("dataset", "Only this dataset's", {"type": "string"}), *PAGE],
                 responses={200: "items (import_id, dataset, image_id, source_id, reason, detail, recorded_at), next"}),
    ]  # fmt: skip


def endpoints() -> list[Endpoint]:
    return [*annotation_endpoints(), *label_endpoints(), *user_endpoints(), *export_endpoints(), *import_error_endpoints()]
