"""A log call whose ``extra`` names a LogRecord attribute (``created``, ``name``, ``msg``...) raises KeyError
inside the logging call, so the code around it fails: a consumer's handler that did its work is then retried
and parked. Every literal ``extra`` in the code is checked here."""

import ast
import logging
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RESERVED = set(vars(logging.LogRecord("name", logging.INFO, "path", 1, "msg", (), None))) | {"message", "asctime"}


def test_no_log_call_passes_a_reserved_key_in_extra():
    clashes = []
    for folder in ("services", "shared", "deploy", "benchmarks"):
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if not isinstance(node, ast.Call):
                    continue
                for keyword in node.keywords:
                    if keyword.arg == "extra" and isinstance(keyword.value, ast.Dict):
                        names = [k.value for k in keyword.value.keys if isinstance(k, ast.Constant)]
                        clashes += [f"{path.relative_to(REPO)}:{node.lineno}: {n!r}" for n in names if n in RESERVED]
    assert clashes == []


def test_the_check_knows_the_keys_that_break_logging():
    assert {"created", "name", "msg", "args", "message", "module", "process"} <= RESERVED
    record_keys = {"image_id", "annotations_created", "failed", "already_there"}
    assert not record_keys & RESERVED
