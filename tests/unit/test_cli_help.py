"""What ``corpus … --help`` tells a newcomer: every command and option it shows says what it does, and says it right."""

from __future__ import annotations

from typing import get_args

import pytest
from typer.testing import CliRunner

from services.annotation.domain.model import ExportFormat
from services.cli import app


def help_of(*command: str) -> str:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def test_export_is_a_command_that_takes_no_subcommand_and_names_every_format():
    said = help_of("export")
    assert "Usage: corpus export [OPTIONS] " in said and "COMMAND" not in said, said
    assert "export Download images with their annotations as COCO, YOLO, YOLO segmentation or pose, Pascal VOC or an image folder" in help_of()
    assert f"--format <{'|'.join(get_args(ExportFormat))}>" in said and "yolo-pose (boxes with their keypoints)" in said, said


def test_replay_puts_messages_back_on_the_services_own_queue():
    said = help_of("bus", "replay")
    assert "its own queue" in said and "exchange" not in said, said
    assert "--limit <int> At most this many messages" in said, said


@pytest.mark.parametrize(
    "command, shown",
    [
        (["users"], "list Every user"),
        (["users"], "revoke Revoke one of a user's API keys"),
        (["users", "key"], "--label <str> What the key is for"),
        (["import", "status"], "import_id <str> The id `corpus import` printed"),
    ],
)
def test_each_command_and_option_says_what_it_is(command, shown):
    said = help_of(*command)
    assert shown in said, said
