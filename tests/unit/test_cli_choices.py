"""Options with a fixed set of values are refused by the command line itself, before any request is sent."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from services.cli import app

NOWHERE = "http://127.0.0.1:1"  # nothing listens on port 1: a request sent would fail otherwise (exit 1)


@pytest.mark.parametrize(
    "args",
    [["users", "create", "Bob", "--role", "superuser"], ["import", "archive", "{archive}", "--kind", "pascal"]],
    ids=["role", "kind"],
)
def test_a_value_outside_the_choices_is_refused_before_any_request(args, tmp_path):
    archive = tmp_path / "data.zip"
    archive.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    given = [arg.format(archive=archive) for arg in args]
    result = CliRunner().invoke(app, [*given, "--url", NOWHERE, "--key", "ick_whatever"])
    assert result.exit_code == 2, result.output
    assert "Invalid value" in result.output and given[-1] in result.output and "uploading" not in result.output
