"""A bad CORPUS_* value is reported by its variable's name, not as pydantic's traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.ingest.config import IngestSettings
from shared.settings import ConfigurationError, CorpusSettings, load_settings

REPO = Path(__file__).resolve().parents[2]


def test_a_list_setting_that_is_not_json_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORPUS_IMPORT_ROOTS", "/data/a:/data/b")
    with pytest.raises(ConfigurationError) as caught:
        load_settings(IngestSettings)
    assert str(caught.value).startswith("CORPUS_IMPORT_ROOTS: not valid JSON")
    assert '["a", "b"]' in str(caught.value)


def test_every_bad_value_is_listed_with_its_input_and_the_rule_it_breaks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORPUS_PORT", "eighty")
    monkeypatch.setenv("CORPUS_AMQP_PREFETCH", "0")
    with pytest.raises(ConfigurationError) as caught:
        load_settings(CorpusSettings)
    message = str(caught.value)
    assert "CORPUS_PORT='eighty': Input should be a valid integer" in message
    assert "CORPUS_AMQP_PREFETCH='0': Input should be greater than or equal to 1" in message


def test_good_values_and_overrides_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORPUS_IMPORT_ROOTS", '["/data/a"]')
    settings = load_settings(IngestSettings, service_name="cli")
    assert settings.import_roots == [Path("/data/a")] and settings.service_name == "cli"


@pytest.mark.parametrize("service", ["ingest", "annotation", "search"])
def test_a_service_started_with_a_bad_setting_exits_2_with_one_line(service: str) -> None:
    env = {**os.environ, "CORPUS_PRESIGN_TTL_SECONDS": "0"}
    done = subprocess.run([sys.executable, "-m", f"services.{service}"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == "configuration error: CORPUS_PRESIGN_TTL_SECONDS='0': Input should be greater than or equal to 1"
