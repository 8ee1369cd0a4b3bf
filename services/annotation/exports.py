"""The export use case: pick images, read their annotations and labels a page at a time, write the archive."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import aclosing
from functools import partial
from pathlib import Path

from services.annotation.adapters.archive import ExportZip, export_zip
from services.annotation.domain import export_formats
from services.annotation.domain.errors import InvalidExport, NotFound
from services.annotation.domain.model import ExportFormat as Format
from services.annotation.service import AnnotationDeps
from shared.clients.blobs import BlobStore
from shared.readmodels import IMAGES

FOLDERS = {"coco": "images", "yolo": "images", "yolo-seg": "images", "yolo-pose": "images", "voc": "JPEGImages"}
FILES: dict[str, type[export_formats.ImageFiles]] = {
    "yolo": export_formats.YoloFiles, "yolo-seg": export_formats.YoloSegFiles, "yolo-pose": export_formats.YoloPoseFiles,
    "voc": export_formats.VocFiles, "imagefolder": export_formats.ImageFolderFiles,
}  # fmt: skip
# Annotations per page of an export: what is in memory at once (a page of documents and what is made of it).
PAGE = 500
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "TIFF": "tif", "WEBP": "webp", "BMP": "bmp"}


def _file_names(docs: list[dict]) -> list[dict]:
    """Each image under its original file name's last segment (given one if it has none), with a stem no other
    image of the export has: archive members never leave their folder, and label files match their images."""
    names = [
        (doc["_id"], export_formats.safe_file_name(doc.get("filename"), doc["_id"], EXTENSIONS.get(doc.get("format", ""), "bin")))
        for doc in docs
    ]
    return [
        {"id": doc["_id"], "sha256": doc["sha256"], "file_name": name, "width": doc["width"], "height": doc["height"], "mode": doc.get("mode")}
        for doc, name in zip(docs, export_formats.unique_file_names(names), strict=True)
    ]


async def resolved_classes(deps: AnnotationDeps, classes: list[str]) -> list[str]:
    """The label names ``classes`` stand for, in their order: a name, an alias or a merged label's name gives
    the label it resolves to (annotations carry that label). A name no label has, or two names of one label,
    is refused: either would export a class no object carries, without a word."""
    found = await deps.labels.resolve_many(classes)
    if unknown := [name for name in classes if name not in found]:
        raise InvalidExport(
            "unknown_classes", f"No label is named {', '.join(map(repr, unknown[:10]))}, nor has it as an alias.", unknown=unknown[:50]
        )
    names = []
    for name in classes:
        label = found[name]
        names.append((await deps.labels.live(label["_id"]))["name"] if label.get("merged_into") else label["name"])
    if repeated := sorted({n for n in names if names.count(n) > 1}):
        raise InvalidExport("repeated_classes", f"Several classes given are the same label: {', '.join(map(repr, repeated[:10]))}.")
    return names


async def select_images(deps: AnnotationDeps, image_ids: list[str] | None, dataset: str | None, limit: int) -> list[str]:
    if image_ids:
        return list(dict.fromkeys(image_ids))
    if dataset:
        ids = await deps.annotations.annotations.distinct("image_id", {"dataset": dataset, "deleted": False})
        if len(ids) > limit:
            raise InvalidExport("too_many_images", f"The dataset has {len(ids)} images; export at most {limit} at once.")
        return sorted(ids)
    raise InvalidExport("no_selection", "Give 'image_ids', 'dataset' or 'search' to say which images to export.")


async def export_archive(
    deps: AnnotationDeps, blobs: BlobStore, fmt: Format, image_ids: list[str], id_scheme: str | None, classes: list[str] | None = None,
    dataset: str | None = None,
) -> Path:
    """The archive; with ``classes`` (normalised names), only their annotations, numbered in that order; with
    ``dataset``, only that dataset's annotations and those made by hand on its images: another import of the
    same images (an export imported back under another name) would otherwise come back doubled.

    The annotations are read in one snapshot: first which labels they carry (so every class number or
    category id is known before the first object is written), then the annotations themselves, a page at
    a time, as they were at that moment; each page is written into the zip as it comes."""
    images, paths = await _images(deps, image_ids), None
    async with export_zip() as archive:
        async with deps.annotations.snapshot() as session:
            used = await deps.annotations.label_ids_of(image_ids, dataset, fmt, session)
            labels = await _labels(deps, used)
            if classes is not None:
                wanted = set(classes)
                used = [label_id for label_id in used if labels[label_id]["name"] in wanted]
            pages = deps.annotations.pages_of(image_ids, dataset, fmt, used, PAGE, session)
            async with aclosing(pages):  # its cursor closed even when writing fails
                if fmt == "coco":
                    document = export_formats.CocoDocument(images, used, labels, id_scheme, classes)
                    await archive.write_text("annotations/instances.json", _coco_pieces(document, pages))
                else:
                    files = FILES[fmt](images, used, labels, classes)
                    await _write_files(archive, files, pages)
                    paths = files.paths if isinstance(files, export_formats.ImageFolderFiles) else None
        await archive.add_images(blobs, images, FOLDERS.get(fmt, ""), paths)
    return archive.path


async def _write_files(archive: ExportZip, files: export_formats.ImageFiles, pages: AsyncIterator[list[dict]]) -> None:
    """A per-image format's files, each page's in a worker thread as it comes (:class:`ImageFiles`)."""
    await archive.add_files(files.head)
    async for page in pages:
        await archive.add_files(partial(files.page, page))
    await archive.add_files(files.rest)


async def _images(deps: AnnotationDeps, image_ids: list[str]) -> list[dict]:
    """The images in ``image_ids`` order, with what the archive needs of them (file name, blob, size)."""
    projection = {"filename": 1, "format": 1, "sha256": 1, "width": 1, "height": 1, "mode": 1}
    docs = {d["_id"]: d async for d in deps.annotations.db[IMAGES].find({"_id": {"$in": image_ids}}, projection)}
    missing = [i for i in image_ids if i not in docs]
    if missing:
        raise NotFound(f"{len(missing)} image id(s) are unknown, e.g. {missing[0]!r}.", missing=missing[:20])
    return _file_names([docs[i] for i in image_ids])


async def _labels(deps: AnnotationDeps, label_ids: Iterable[str]) -> dict[str, dict]:
    """Each label with its parent's name (COCO's supercategory)."""
    labels = {}
    for label_id in label_ids:
        label = await deps.labels.get(label_id)
        parent = (await deps.labels.get(label["parent_id"]))["name"] if label.get("parent_id") else None
        labels[label_id] = {**label, "parent": parent}
    return labels


async def _coco_pieces(document: export_formats.CocoDocument, pages: AsyncIterator[list[dict]]) -> AsyncIterator[Callable[[], str]]:
    """The document's pieces, each to be rendered (JSON-encoded) in a worker thread."""
    yield document.head
    async for page in pages:
        yield partial(document.annotations, page)
    yield document.tail
