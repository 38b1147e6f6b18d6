"""The OpenAPI document is good enough for a generator nobody here wrote.

``openapi-python-client`` generates a client from the live ``/openapi.json`` of a real server;
the generated code must compile, create a run, read its status and list runs by tag. The
document's own qualities (ids, schemas, errors) are checked here too.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from writgate.app.openapi import api_routes
from writgate.app.server import create_app
from writgate.settings import Settings

from .forge_server import create_api_key, running_server

GENERATOR = Path(sys.executable).with_name("openapi-python-client")
PACKAGE = "writgate_generated_client"


@pytest.fixture
def server(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    monkeypatch.setenv("WRITGATE_EXECUTOR", "off")  # API behaviour only: runs stay queued
    key = create_api_key(settings, "org-a")
    with running_server(settings) as url:
        yield url, key


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_generated_client_creates_reads_and_lists_runs(
    server: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, key = server
    document = tmp_path / "openapi.json"
    document.write_text(httpx.get(f"{url}/openapi.json", timeout=30).text)
    out = tmp_path / "generated" / PACKAGE
    env = {**os.environ, "PATH": f"{GENERATOR.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        [str(GENERATOR), "generate", "--path", str(document), "--meta", "none",
         "--output-path", str(out)],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    # The generator reports what it had to skip; a complete document skips nothing.
    assert "Warning" not in result.stdout + result.stderr, result.stdout + result.stderr
    compiled = subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(out)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr

    monkeypatch.syspath_prepend(str(out.parent))
    client_module = importlib.import_module(f"{PACKAGE}.client")
    create_run = importlib.import_module(f"{PACKAGE}.api.coding_agent.create_run")
    get_run_status = importlib.import_module(f"{PACKAGE}.api.coding_agent.get_run_status")
    list_runs = importlib.import_module(f"{PACKAGE}.api.coding_agent.list_runs")
    models = importlib.import_module(f"{PACKAGE}.models")
    client = client_module.AuthenticatedClient(base_url=url, token=key)
    request = models.CreateRunRequest.from_dict(
        {
            "repository": "acme/app",
            "prompt": "Fix the flaky test",
            "tags": ["CI", "generated"],
            "agent": {"driver": "command", "argv": ["true"]},
            "publish": {"mode": "none"},
        }
    )
    with client as http:
        created = create_run.sync_detailed(client=http, body=request, idempotency_key="gen-1")
        assert created.status_code == 201, created.content
        run = created.parsed
        assert isinstance(run, models.Run) and run.tags == ["ci", "generated"]
        replay = create_run.sync_detailed(client=http, body=request, idempotency_key="gen-1")
        assert replay.status_code == 200 and replay.parsed.id == run.id
        status = get_run_status.sync(client=http, run_id=run.id)
        assert isinstance(status, models.RunStatus)
        assert status.lifecycle == models.Lifecycle.QUEUED and status.terminal is False
        listed = list_runs.sync(client=http, tag=["generated"])
        assert isinstance(listed, models.RunList) and [r.id for r in listed.items] == [run.id]
        assert list_runs.sync(client=http, tag=["nothing"]).items == []
        # Errors parse as the documented Problem.
        missing = get_run_status.sync_detailed(client=http, run_id="run_nope")
        assert missing.status_code == 404
        assert isinstance(missing.parsed, models.Problem)
        assert missing.parsed.code == "run_not_found"
        bad = create_run.sync_detailed(
            client=http,
            body=models.CreateRunRequest.from_dict(
                {"repository": "acme/app", "prompt": "x", "tags": ["bad tag!"],
                 "agent": {"driver": "command", "argv": ["true"]}}
            ),
        )  # fmt: skip
        assert bad.status_code == 422 and bad.parsed.field == "/tags/0"


def _app() -> Any:
    # The document needs the routes only: no database is opened (no lifespan runs).
    return create_app(Settings(home=Path("/nonexistent"), database_url="sqlite+aiosqlite://"))


def _document() -> dict[str, Any]:
    document: dict[str, Any] = _app().openapi()
    return document


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_every_route_has_an_explicit_unique_camel_case_operation_id() -> None:
    app = _app()
    routes = [r for r in api_routes(app) if r.include_in_schema]
    assert len(routes) > 50
    missing = [f"{sorted(r.methods)} {r.path}" for r in routes if not r.operation_id]
    assert missing == []
    ids = [operation["operationId"] for _, _, operation in _operations(app.openapi())]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z][A-Za-z0-9]+", i) for i in ids), ids


def test_component_schemas_are_named_and_unique() -> None:
    schemas = _document()["components"]["schemas"]
    assert not [name for name in schemas if "__" in name or "-" in name]
    # Pydantic names generic or duplicated models Model[...] or Module__Model: none here.
    assert all(re.fullmatch(r"[A-Z][A-Za-z0-9]+", name) for name in schemas), sorted(schemas)
    assert "HTTPValidationError" not in schemas  # the server never sends it
    text = json.dumps(_document())
    for ref in set(re.findall(r'"#/components/schemas/([^"]+)"', text)):
        assert ref in schemas, ref


def test_every_error_response_is_a_documented_problem() -> None:
    document = _document()
    problem = document["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "code"} <= set(problem["required"])
    for path, method, operation in _operations(document):
        responses = operation["responses"]
        assert "500" in responses, (method, path)
        if operation.get("security"):
            assert "401" in responses, (method, path)
        for status, response in responses.items():
            if int(status) >= 400:
                schema = response["content"]["application/problem+json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Problem"}, (method, path, status)
                assert response["description"], (method, path, status)
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    unauthenticated = [
        path for path, _, operation in _operations(document) if not operation.get("security")
    ]
    assert unauthenticated == ["/api/v1/forge/github/webhook"]


def _schemas_reached(document: dict[str, Any], operations: list[dict[str, Any]]) -> set[str]:
    schemas = document["components"]["schemas"]
    todo = set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(operations)))
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo |= set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(schemas[name])))
    return seen


def _described(spec: dict[str, Any], schemas: dict[str, Any]) -> bool:
    """A property is described by its own description or, for a reference to a component
    (pydantic leaves the field's description off a bare $ref), by that component's."""
    if spec.get("description"):
        return True
    ref = spec.get("$ref")
    return bool(ref and schemas[ref.rsplit("/", 1)[1]].get("description"))


@pytest.mark.parametrize(
    "prefixes",
    [("/api/v1/coding-agent/",), ("/api/v1/pipeline", "/api/v1/passports")],
    ids=["runs", "pipelines-and-passports"],
)
def test_every_field_and_parameter_is_described(prefixes: tuple[str, ...]) -> None:
    document = _document()
    operations = [
        operation for path, _, operation in _operations(document) if path.startswith(prefixes)
    ]
    undocumented = [
        f"{operation['operationId']}: {parameter['name']}"
        for operation in operations
        for parameter in operation.get("parameters", [])
        if not parameter.get("description")
    ]
    assert undocumented == []
    schemas = document["components"]["schemas"]
    missing = [
        f"{name}.{field}"
        for name in sorted(_schemas_reached(document, operations))
        for field, spec in (schemas[name].get("properties") or {}).items()
        if not _described(spec, schemas)
    ]
    assert missing == []
    for operation in operations:
        assert operation.get("summary") and operation.get("description"), operation["operationId"]
