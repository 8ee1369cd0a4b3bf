"""The configurable acceptance policy: size bounds and formats, checked on an image's facts."""

from __future__ import annotations

from dataclasses import dataclass

from services.ingest.domain.errors import ImageRefused


@dataclass(frozen=True)
class Policy:
    min_width: int = 1
    min_height: int = 1
    max_width: int = 50_000
    max_height: int = 50_000
    max_bytes: int = 64 * 1024**2
    allowed_formats: frozenset[str] = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"})


MAX_TAGS = 200
MAX_TAG_LENGTH = 200


def check_tags(tags: tuple[str, ...] | list[str]) -> None:
    """Tags are names to filter and facet by, not free text: a bounded number of bounded length."""
    if len(tags) > MAX_TAGS:
        raise ImageRefused("invalid_tags", f"{len(tags):,} tags were given; at most {MAX_TAGS} are kept per image.")
    if long := next((t for t in tags if len(t) > MAX_TAG_LENGTH), None):
        raise ImageRefused("invalid_tags", f"The tag {long[:40]!r}… has {len(long):,} characters; tags have at most {MAX_TAG_LENGTH}.")


def check_size(size: int, policy: Policy) -> None:
    """Before any decoding: the byte budget."""
    if size > policy.max_bytes:
        raise ImageRefused("too_large", f"The file has {size:,} bytes, over the limit of {policy.max_bytes:,}.")


def check_facts(facts: dict, policy: Policy) -> None:
    """After probing: format and dimensions."""
    sha = facts.get("sha256")
    if facts["format"] not in policy.allowed_formats:
        allowed = ", ".join(sorted(policy.allowed_formats))
        raise ImageRefused("format_not_allowed", f"{facts['format']} images are not accepted here; send {allowed}.", sha256=sha)
    width, height = facts["width"], facts["height"]
    if width < policy.min_width or height < policy.min_height:
        raise ImageRefused(
            "too_small",
            f"The image is {width}×{height}; the minimum is {policy.min_width}×{policy.min_height}.",
            sha256=sha,
        )
    if width > policy.max_width or height > policy.max_height:
        raise ImageRefused(
            "too_big",
            f"The image is {width}×{height}; the maximum is {policy.max_width}×{policy.max_height}.",
            sha256=sha,
        )
