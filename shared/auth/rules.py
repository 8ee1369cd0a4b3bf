"""The authorisation rule set: readers read, uploaders ingest, annotators annotate,
admins manage labels, users and deletions."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    ANNOTATOR = "annotator"
    UPLOADER = "uploader"
    READER = "reader"


class Permission(StrEnum):
    READ = "read"  # search, fetch images, annotations, labels, history
    INGEST = "ingest"  # upload, fetch by URL, imports
    ANNOTATE = "annotate"  # create, edit, delete, revert annotations; create labels by using them
    MANAGE_LABELS = "manage_labels"  # rename, merge, alias, re-parent labels
    MANAGE_USERS = "manage_users"  # users, roles, API keys
    DELETE = "delete"  # delete images, replay dead letters, reindex
    ADMIN = "admin"  # operations: reindex, reconcile, dead letters


RULES: dict[Role, frozenset[Permission]] = {
    Role.READER: frozenset({Permission.READ}),
    Role.UPLOADER: frozenset({Permission.READ, Permission.INGEST}),
    Role.ANNOTATOR: frozenset({Permission.READ, Permission.ANNOTATE}),
    Role.ADMIN: frozenset(Permission),
}


def allowed(role: Role | str, permission: Permission) -> bool:
    return permission in RULES.get(Role(role), frozenset())


def may_delete_annotation(role: Role | str, user_id: str, created_by: str) -> bool:
    """Annotators edit any annotation but delete only their own; admins delete any."""
    role = Role(role)
    return role is Role.ADMIN or (role is Role.ANNOTATOR and user_id == created_by)
