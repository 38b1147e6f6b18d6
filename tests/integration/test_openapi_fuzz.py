"""schemathesis (a tool nobody here wrote) against the live OpenAPI document of a real server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from writgate.settings import Settings

from .forge_server import create_api_key, running_server

ST = str(Path(sys.executable).with_name("st"))
CHECKS = "not_a_server_error,response_schema_conformance,content_type_conformance"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Runs created by generated requests stay queued: no generated argv is ever executed.
    monkeypatch.setenv("WRITGATE_EXECUTOR", "off")
    key = create_api_key(settings, "fuzz")
    with running_server(settings) as url:
        result = subprocess.run(
            [
                ST,
                "run",
                f"{url}/openapi.json",
                "--checks",
                CHECKS,
                "--header",
                f"Authorization: Bearer {key}",
                "--max-examples",
                "15",
                "--generation-deterministic",
                "--request-timeout",
                "20",
                "--include-path-regex",
                "^/api/v1/coding-agent/",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            stdin=subprocess.DEVNULL,
            cwd=tmp_path,
            env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
        )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "POST /api/v1/coding-agent/runs" in output, output[-3000:]
    assert "Unresolvable" not in output, output[-3000:]
