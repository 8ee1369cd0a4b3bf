"""Annotation settings (environment, prefix ``CORPUS_``)."""

from __future__ import annotations

from shared.settings import CorpusSettings


class AnnotationSettings(CorpusSettings):
    service_name: str = "annotation"
    port: int = 8002
