"""Schemathesis over /openapi.json against the real gunicorn: no server error, and every
response conforms to the document (status, content type, schema)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance"
)


def fuzz(url: str, max_examples: int, report: Path) -> tuple[int, str]:
    """(cases generated, output) of one schemathesis run; fails the test on any failure."""
    command = [
        sys.executable,
        "-c",
        "from schemathesis.cli import schemathesis; schemathesis()",
        "run",
        f"{url}/openapi.json",
        "--max-examples",
        str(max_examples),
        "--seed",
        "1",
        "--checks",
        CHECKS,
        "--suppress-health-check",
        "all",
        "--request-timeout",
        "30",
        "--no-color",
        "--report",
        "junit",
        "--report-dir",
        str(report),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    generated = re.search(r"(\d+) generated", result.stdout)
    assert generated, result.stdout[-2000:]
    return int(generated.group(1)), result.stdout


def test_fuzz_short(one_worker, tmp_path):
    cases, _ = fuzz(one_worker[0], 3, tmp_path)
    assert cases >= 200


@pytest.mark.slow
def test_fuzz_at_least_2000_cases(one_worker, tmp_path):
    cases, output = fuzz(one_worker[0], 100, tmp_path)
    assert cases >= 2000, output[-2000:]
