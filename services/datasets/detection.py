"""Object detection and instance segmentation samples, streamed from the corpus.

``CorpusDetection(search_url, annotation_url, api_key, query={...})`` selects
images with the search API (any ``GET /v1/search`` filters, walked page by
page with its cursor, so a selection of any size is listed once and in a
fixed order) and serves, for each index, the image and its target in the
form torchvision's detection models take:

- ``image``: a ``PIL.Image`` in RGB, the pixels as stored (16-bit grey scaled
  to 8 bits, not clipped). Annotations are in the stored pixel frame, as in
  the exports, so no EXIF rotation is applied.
- ``target``: ``boxes`` (N × 4, float32, ``x1, y1, x2, y2`` pixels),
  ``labels`` (N, int64: ``classes[i]`` is label ``i + 1``, since torchvision's
  detection models keep 0 for the background; build them with
  ``num_classes=dataset.num_classes``), ``area``, ``iscrowd`` (a COCO import's
  own flag, else 1 for an RLE mask, as the COCO export writes it),
  ``image_id`` (the corpus id), and with ``masks=True`` a ``masks`` array
  (N × H × W, uint8) rasterised from polygons and RLE masks with pycocotools
  (a box-only annotation's mask is its box); with ``keypoints=True`` a
  ``keypoints`` array (N × K × 3, float32, ``x, y, visibility``) for classes
  whose labels share a keypoint schema of K names (``dataset.keypoint_names``;
  an object without points has visibility 0 throughout), as torchvision's
  ``keypointrcnn_resnet50_fpn(num_keypoints=K)`` takes it.

``classes`` are the names of every label of the taxonomy (merged ones
aside), sorted (the same for any selection), unless given. Given names may be
aliases or merged labels' names: ``dataset.classes`` holds the names of the
labels they resolve to, and a name no label has is a ``ValueError``. An annotation whose label is not among them is
left out, as are classifications and keypoint-only annotations (no box).

Images are downloaded on first use through the search service's
time-limited URLs (refreshed when they expire) and, with ``cache_dir``,
kept on disk under their SHA-256 (the image id), so an epoch after the first
reads local files. Annotations are read when the sample is, so edits made
meanwhile show up on the next epoch.

The dataset pickles without its HTTP pool (each DataLoader worker makes its
own) and with the selection it listed, so the workers agree on the order.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import numpy as np
import urllib3
from PIL import Image
from pycocotools import mask as coco_mask

from shared.naming import normalize_name
from shared.crowd import is_crowd

Transforms = Callable[[Image.Image, dict[str, Any]], tuple[Any, Any]]
PAGE = 100


class CorpusRequestFailed(Exception):
    """The corpus answered a request with an error (its problem details are in the message)."""


class CorpusDetection:
    def __init__(
        self,
        search_url: str,
        annotation_url: str,
        api_key: str,
        *,
        query: dict[str, str] | None = None,
        classes: Sequence[str] | None = None,
        masks: bool = False,
        keypoints: bool = False,
        cache_dir: str | os.PathLike[str] | None = None,
        transforms: Transforms | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.search_url = search_url.rstrip("/")
        self.annotation_url = annotation_url.rstrip("/")
        self.masks = masks
        self.transforms = transforms
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._timeout = timeout
        self._http: urllib3.PoolManager | None = None
        self._labels: dict[str, dict[str, Any]] = {}  # the classes' labels by name, as the annotation service shows them
        self.classes = self._resolved(classes) if classes is not None else self._taxonomy()
        self.keypoint_names = self._keypoint_names() if keypoints else None
        # Given names match the way the corpus names labels (normalised: "Traffic_Light" is "traffic light").
        # Label i + 1 for classes[i]: 0 is the background in torchvision's detection models.
        self.class_to_idx = {normalize_name(name): index + 1 for index, name in enumerate(self.classes)}
        self.num_classes = len(self.classes) + 1  # what those models are built with: the background counts
        params = {k: v for k, v in (query or {}).items() if k not in ("cursor", "limit", "facets")}
        self.ids = [hit["image_id"] for hit in self._pages(f"{self.search_url}/v1/search", {**params, "limit": str(PAGE)})]

    # -- the Dataset protocol

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        image_id = self.ids[index]
        image = Image.open(io.BytesIO(self._image_bytes(image_id)))
        image.load()
        target = self._target(image_id, image.height, image.width)
        image = as_rgb(image)
        if self.transforms is not None:
            return self.transforms(image, target)
        return image, target

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_http": None}  # a pool's sockets do not cross into a worker process

    # -- HTTP

    def _pool(self) -> urllib3.PoolManager:
        if self._http is None:
            self._http = urllib3.PoolManager(
                timeout=urllib3.Timeout(total=self._timeout),
                retries=urllib3.Retry(total=5, backoff_factor=0.5, status_forcelist=(502, 503, 504), respect_retry_after_header=True),
            )
        return self._http

    def _get(self, url: str, *, authorised: bool = True, expected: tuple[int, ...] = (200,)) -> urllib3.BaseHTTPResponse:
        try:
            response = self._pool().request("GET", url, headers=self._headers if authorised else None)
        except urllib3.exceptions.HTTPError as exc:  # no answer after the retries: one error type for callers
            raise CorpusRequestFailed(f"GET {url.split('?')[0]} got no answer: {exc}") from exc
        if response.status not in expected:
            raise CorpusRequestFailed(f"GET {url.split('?')[0]} answered {response.status}: {response.data[:500].decode(errors='replace')}")
        return response

    def _json(self, url: str, params: dict[str, str] | None = None) -> Any:
        return json.loads(self._get(f"{url}?{urlencode(params)}" if params else url).data)

    def _pages(self, url: str, params: dict[str, str] | None = None) -> Iterator[dict[str, Any]]:
        params = dict(params or {})
        while True:
            body = self._json(url, params)
            yield from body["items"]
            if not body.get("next"):
                return
            params["cursor"] = body["next"]

    def _resolved(self, classes: Sequence[str]) -> list[str]:
        """The label names ``classes`` stand for, in their order: a name, an alias or a merged label's name
        gives the label it resolves to (annotations carry that name). A name no label has, or two names of
        one label, is a ValueError: either would give a class no annotation ever carries, without a word."""
        names, unknown = [], []
        for name in classes:
            response = self._get(f"{self.annotation_url}/v1/labels/resolve?{urlencode({'name': name})}", expected=(200, 404))
            if response.status == 404:
                unknown.append(name)
            else:
                label = json.loads(response.data)
                names.append(label["name"])
                self._labels[label["name"]] = label
        if unknown:
            raise ValueError(f"classes: no label is named {', '.join(map(repr, unknown[:10]))}, nor has it as an alias")
        if repeated := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"classes: several names given are the same label: {', '.join(map(repr, repeated[:10]))}")
        return names

    def _taxonomy(self) -> list[str]:
        """Every label's name, sorted; a label merged into another carries no annotations and is no class."""
        labels = self._pages(f"{self.annotation_url}/v1/labels", {"limit": str(PAGE)})
        self._labels = {label["name"]: label for label in labels if not label.get("merged_into")}
        return sorted(self._labels)

    def _keypoint_names(self) -> list[str]:
        """The keypoint names every class shares (torchvision's keypoint models take one K for all)."""
        schemas = {name: self._labels[name].get("keypoints") for name in self.classes}
        if lacking := [name for name, schema in schemas.items() if not schema]:
            raise ValueError(
                f"keypoints=True: the classes {', '.join(map(repr, lacking[:10]))} have no keypoint schema "
                "(choose classes that do, or give their labels one: PATCH /v1/labels/<id> with 'keypoints')"
            )
        if len({len(schema) for schema in schemas.values()}) > 1:
            raise ValueError(f"keypoints=True: the classes' keypoint schemas differ in length: { {n: len(s) for n, s in schemas.items()} }")
        return next(iter(schemas.values()))

    # -- one sample

    def _image_bytes(self, image_id: str) -> bytes:
        cached = self.cache_dir / image_id[:2] / image_id if self.cache_dir else None
        if cached is not None and cached.is_file():
            return cached.read_bytes()
        detail = self._json(f"{self.search_url}/v1/images/{quote(image_id)}")
        data = self._get(detail["original_url"], authorised=False).data  # a signed URL carries its own authority
        if hashlib.sha256(data).hexdigest() != image_id:
            raise CorpusRequestFailed(f"image {image_id}: the bytes downloaded do not hash to its id")
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            partial = cached.with_name(f".{image_id}.{os.getpid()}")
            partial.write_bytes(data)
            partial.replace(cached)  # a worker reading it meanwhile sees all of it or none
        return data

    def _target(self, image_id: str, height: int, width: int) -> dict[str, Any]:
        boxes, labels, areas, crowds, masks, points = [], [], [], [], [], []
        for annotation in self._pages(f"{self.annotation_url}/v1/images/{quote(image_id)}/annotations", {"limit": str(PAGE)}):
            index = self.class_to_idx.get(annotation["label"])
            if index is None or not annotation.get("bbox"):
                continue
            x, y, w, h = annotation["bbox"]
            boxes.append([x, y, x + w, y + h])
            labels.append(index)
            areas.append(annotation.get("area") or w * h)
            crowds.append(is_crowd(annotation))
            if self.masks:
                masks.append(_mask(annotation, height, width))
            if self.keypoint_names:
                points.append(_points(annotation.get("keypoints"), len(self.keypoint_names)))
        target: dict[str, Any] = {
            "image_id": image_id,
            "boxes": np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
            "labels": np.asarray(labels, dtype=np.int64),
            "area": np.asarray(areas, dtype=np.float32),
            "iscrowd": np.asarray(crowds, dtype=np.int64),
        }
        if self.masks:
            target["masks"] = np.stack(masks) if masks else np.zeros((0, height, width), dtype=np.uint8)
        if self.keypoint_names:
            target["keypoints"] = np.asarray(points, dtype=np.float32).reshape(-1, len(self.keypoint_names), 3)
        return target


def _points(given: list[list[float]] | None, count: int) -> list[list[float]]:
    """An object's ``count`` keypoints; all unlabelled (visibility 0, which torchvision's loss ignores) when it
    has none, or another number of them (made before its label's schema changed)."""
    return given if given and len(given) == count else [[0.0, 0.0, 0.0]] * count


# Modes of more than 8 bits a channel that Pillow's convert("RGB") clips instead of scaling (65535 → 255, 300 → 255).
_WIDE_GREY = {"I", "I;16", "I;16B", "I;16L", "I;16N"}


def as_rgb(image: Image.Image) -> Image.Image:
    """The image in RGB; 16- and 32-bit grey scaled to 8 bits (a 16-bit photo came out nearly all white)."""
    if image.mode not in _WIDE_GREY:
        return image.convert("RGB")
    values = np.asarray(image).astype(np.int64)
    if values.max(initial=0) > 255:  # 16-bit data: 0-65535 onto 0-255
        values = np.clip(values, 0, 65535) // 257
    return Image.fromarray(values.astype(np.uint8), "L").convert("RGB")


def _mask(annotation: dict[str, Any], height: int, width: int) -> np.ndarray:
    """The annotation's pixels as an H × W uint8 array: its RLE, its polygon rings, or else its box."""
    if annotation.get("rle"):
        rle = dict(annotation["rle"])
        if isinstance(rle.get("counts"), str):
            rle["counts"] = rle["counts"].encode()
        return coco_mask.decode(rle).astype(np.uint8)
    if annotation.get("polygon"):
        rles = coco_mask.frPyObjects(annotation["polygon"], height, width)
        return coco_mask.decode(coco_mask.merge(rles)).astype(np.uint8)
    x, y, w, h = annotation["bbox"]
    return coco_mask.decode(coco_mask.frPyObjects(np.array([[x, y, w, h]], dtype=np.float64), height, width)[0]).astype(np.uint8)
