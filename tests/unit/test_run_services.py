"""``make run`` on other ports: the services' own addresses follow the ports, so the admin page still works."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from services.search.config import SearchSettings

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "local" / "run_services.py"


def _run_services():
    spec = importlib.util.spec_from_file_location("run_services", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_other_ports_move_the_cors_origin_and_the_service_urls_with_them(monkeypatch):
    environ = {"CORPUS_INGEST_PORT": "8231", "CORPUS_ANNOTATION_PORT": "8232", "CORPUS_SEARCH_PORT": "8233"}
    derived = _run_services().derived_settings(environ)
    for key, value in derived.items():
        monkeypatch.setenv(key, value)
    settings = SearchSettings()
    # The admin page is served by search on :8233; before, the origin stayed :8003 and every call was refused.
    assert "http://127.0.0.1:8233" in settings.cors_origins and "http://127.0.0.1:8003" not in settings.cors_origins
    assert (settings.admin_ingest_url, settings.admin_annotation_url) == ("http://127.0.0.1:8231", "http://127.0.0.1:8232")
    assert derived["CORPUS_SEARCH_URL"] == "http://127.0.0.1:8233"


def test_settings_given_explicitly_are_kept():
    own = json.dumps(["https://corpus.example.org"])
    derived = _run_services().derived_settings({"CORPUS_SEARCH_PORT": "9003", "CORPUS_CORS_ORIGINS": own})
    assert "CORPUS_CORS_ORIGINS" not in derived and derived["CORPUS_ADMIN_INGEST_URL"] == "http://127.0.0.1:8001"
