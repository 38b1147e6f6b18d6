"""A fake GitHub on 127.0.0.1 that checks every exchange against GitHub's OpenAPI description.

Every request the adapter sends and every response served is validated with openapi-core against
``shared/github-openapi/subset.json`` (its server URL pointed at this fake, mounted under
``/api/v3`` like GitHub Enterprise Server). Response bodies start from a minimal instance of the
documented schema (every required field, generated from the schema itself) with the fields the
test cares about filled in, so a served body is GitHub-shaped by construction and by validation.

Calls outside the subset are answered but recorded in ``unvalidated`` so tests state them
explicitly. ``/git/OWNER/NAME.git`` serves real git smart HTTP (``git http-backend``) and requires
``Authorization: Basic x-access-token:TOKEN``.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from openapi_core import OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

SUBSET = Path("/work/shared/github-openapi/subset.json")
if not SUBSET.exists():  # the repository's own copy, when the shared folder is not mounted
    SUBSET = Path(__file__).resolve().parents[2] / "shared" / "github-openapi" / "subset.json"
NOW = "2026-11-28T20:00:00Z"


@cache
def spec_dict() -> dict[str, Any]:
    return json.loads(SUBSET.read_text())  # type: ignore[no-any-return]


def _resolve(node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = spec_dict()
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def example(schema: Any, depth: int = 0) -> Any:
    """A minimal instance of ``schema``: required properties only, first enum values."""
    schema = _resolve(schema)
    if depth > 25:
        return None
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            value = example(part, depth + 1)
            if isinstance(value, dict):
                merged.update(value)
        return merged
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return example(schema[key][0], depth + 1)
    if schema.get("nullable") and depth > 0:
        return None
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        found = {}
        for name in schema.get("required", []):
            value = example(props.get(name, {}), depth + 1)
            found[name] = NOW if name.endswith("_at") and value == "x" else value
        return found
    if kind == "array":
        return []
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return False
    if kind == "string":
        fmt = schema.get("format")
        if fmt == "date-time":
            return NOW
        if fmt == "uri":
            return "https://github.example/x"
        if fmt == "email":
            return "octocat@example.com"
        return "x"
    return None


def deep_update(base: Any, overrides: dict[str, Any]) -> Any:
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = value
    return base


def response_body(path: str, method: str, status: int, **overrides: Any) -> Any:
    """A documented response body of an operation, with ``overrides`` applied."""
    response = _resolve(spec_dict()["paths"][path][method]["responses"][str(status)])
    schema = response["content"]["application/json"]["schema"]
    return deep_update(example(schema), overrides) if overrides else example(schema)


def schema_example(schema_name: str, /, **overrides: Any) -> Any:
    """A minimal ``#/components/schemas/NAME`` with ``overrides``."""
    return deep_update(example({"$ref": f"#/components/schemas/{schema_name}"}), overrides)


def user(login: str) -> dict[str, Any]:
    return schema_example("simple-user", login=login)


@dataclass
class Exchange:
    """One request the fake answered."""

    method: str
    path: str
    query: str
    authorization: str | None
    body: Any
    status: int = 0


@dataclass
class Reply:
    """A scripted answer."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[["FakeGitHub", Request, dict[str, str]], Reply]

# (method, pattern, operation path in the spec or None when outside the subset)
_ROUTES: list[tuple[str, re.Pattern[str], str | None, str]] = []


def route(method: str, pattern: str, spec_path: str | None) -> Callable[[Any], Any]:
    def register(func: Any) -> Any:
        regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "$")
        _ROUTES.append((method, regex, spec_path, func.__name__))
        return func

    return register


class FakeGitHub:
    """The fake's state and its WSGI app (see the module docstring)."""

    def __init__(self, root: Path, *, app_public_key: rsa.RSAPublicKey | None = None):
        self.root = root
        self.app_public_key = app_public_key
        self.app_id = "12345"
        self.valid_tokens: set[str] = set()
        self.clock: Callable[[], float] = lambda: 0.0
        self.exchanges: list[Exchange] = []
        self.errors: list[str] = []
        self.unvalidated: list[str] = []
        self.undocumented: list[str] = []
        self.faults: list[tuple[str, str, Reply]] = []  # (method, path regex, reply) used once
        self.issued = 0
        self.pulls: dict[int, dict[str, Any]] = {}
        self.files: list[dict[str, Any]] = []
        self.reviews: list[dict[str, Any]] = []
        self.statuses: list[dict[str, Any]] = []
        self.check_runs: dict[int, dict[str, Any]] = {}
        self.annotation_batches: list[int] = []
        self.comments: list[dict[str, Any]] = []
        self.labels: list[str] = []
        self.base_url = ""
        self.git_url = ""
        self.openapi: OpenAPI | None = None
        self.git_authorization: list[str | None] = []
        self._lock = threading.Lock()

    # -- WSGI --------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        if request.path.startswith("/git/"):
            return self._git(request)(environ, start_response)
        return self._api(request)(environ, start_response)

    def _api(self, request: Request) -> Response:
        assert self.openapi is not None
        raw = request.get_data()
        exchange = Exchange(
            method=request.method,
            path=request.path,
            query=request.query_string.decode(),
            authorization=request.headers.get("Authorization"),
            body=json.loads(raw) if raw else None,
        )
        with self._lock:
            self.exchanges.append(exchange)
        path = request.path.removeprefix("/api/v3")
        for method, regex, spec_path, name in _ROUTES:
            match = regex.match(path)
            if method != request.method or match is None:
                continue
            if spec_path is not None:
                self._validate_request(request, exchange)
            else:
                self.unvalidated.append(f"{method} {regex.pattern}")
            reply = self._fault(request.method, path) or self._authorize(request, spec_path)
            if reply is None:
                try:
                    reply = getattr(self, name)(request, match.groupdict())
                except Exception as exc:  # a bug in the fake: recorded, and the test fails
                    self.errors.append(f"handler {name} failed: {type(exc).__name__}: {exc}")
                    raise
            response = Response(
                json.dumps(reply.body) if reply.body is not None else b"",
                status=reply.status,
                headers=reply.headers,
                content_type="application/json; charset=utf-8",
            )
            exchange.status = reply.status
            if spec_path is not None and not self._undocumented_401(spec_path, exchange):
                self._validate_response(request, response, exchange)
            return response
        self.errors.append(f"no route for {request.method} {path}")
        return Response(json.dumps({"message": "Not Found", "documentation_url": "x"}), 404)

    def _undocumented_401(self, spec_path: str, exchange: Exchange) -> bool:
        # GitHub answers "401 Bad credentials" on every endpoint, but documents it on few.
        operation = spec_dict()["paths"][spec_path][exchange.method.lower()]
        if exchange.status == 401 and "401" not in operation["responses"]:
            self.undocumented.append(f"401 to {exchange.method} {exchange.path}")
            return True
        return False

    def _validate_request(self, request: Request, exchange: Exchange) -> None:
        assert self.openapi is not None
        try:
            self.openapi.validate_request(WerkzeugOpenAPIRequest(request))
        except Exception as exc:  # collected: the test asserts there are none
            self.errors.append(f"request {exchange.method} {exchange.path}: {_explain(exc)}")

    def _validate_response(self, request: Request, response: Response, exchange: Exchange) -> None:
        assert self.openapi is not None
        try:
            self.openapi.validate_response(
                WerkzeugOpenAPIRequest(request), WerkzeugOpenAPIResponse(response)
            )
        except Exception as exc:  # collected: the test asserts there are none
            self.errors.append(
                f"response {exchange.status} to {exchange.method} {exchange.path}: {_explain(exc)}"
            )

    def _fault(self, method: str, path: str) -> Reply | None:
        for i, (fault_method, pattern, reply) in enumerate(self.faults):
            if fault_method == method and re.fullmatch(pattern, path):
                del self.faults[i]
                return reply
        return None

    def _authorize(self, request: Request, spec_path: str | None) -> Reply | None:
        header = request.headers.get("Authorization", "")
        if spec_path == "/app/installations/{installation_id}/access_tokens":
            return None  # checked by the handler (JWT)
        scheme, _, token = header.partition(" ")
        if scheme.lower() not in ("bearer", "token") or token not in self.valid_tokens:
            return Reply(401, {"message": "Bad credentials", "documentation_url": "x"})
        return None

    # -- git smart HTTP ----------------------------------------------------------------------

    def _git(self, request: Request) -> Response:
        header = request.headers.get("Authorization")
        self.git_authorization.append(header)
        expected = {
            "Basic " + base64.b64encode(f"x-access-token:{t}".encode()).decode()
            for t in self.valid_tokens
        }
        if header not in expected:
            return Response("unauthorized", 401, headers={"WWW-Authenticate": 'Basic realm="fake"'})
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.root / "git"),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": request.path.removeprefix("/git"),
            "QUERY_STRING": request.query_string.decode(),
            "REQUEST_METHOD": request.method,
            "CONTENT_TYPE": request.headers.get("Content-Type", ""),
            "REMOTE_USER": "x-access-token",
            "REMOTE_ADDR": "127.0.0.1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
        }
        if request.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = request.headers["Content-Encoding"]
        if request.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = request.headers["Git-Protocol"]
        result = subprocess.run(
            ["git", "http-backend"],
            input=request.get_data(),
            env=env,
            capture_output=True,
            check=False,
            timeout=60,
        )
        head, _, body = result.stdout.partition(b"\r\n\r\n")
        status = 200
        headers = []
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers.append((name.strip(), value.strip()))
        return Response(body, status=status, headers=headers)

    def create_git_repository(self, repository: str, seed: Path) -> Path:
        """A bare repository served at ``/git/REPOSITORY.git``, seeded from ``seed``."""
        bare = self.root / "git" / f"{repository}.git"
        bare.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "clone", "-q", "--bare", str(seed), str(bare)], check=True)
        subprocess.run(["git", "config", "http.receivepack", "true"], cwd=bare, check=True)
        return bare

    # -- handlers ----------------------------------------------------------------------------

    def _pull(self, number: int) -> Reply:
        pr = self.pulls.get(number)
        if pr is None:
            return Reply(404, {"message": "Not Found", "documentation_url": "x"})
        return Reply(200, pr)

    def _link(self, path: str, page: int, last: int) -> dict[str, str]:
        if page >= last:
            return {}
        origin = self.base_url.removesuffix("/api/v3")
        url = f"{origin}{path}?per_page=100&page={page + 1}"
        return {
            "Link": f'<{url}>; rel="next", <{origin}{path}?per_page=100&page={last}>; rel="last"'
        }

    def _paged(self, request: Request, path: str, items: list[Any], size: int = 100) -> Reply:
        page = int(request.args.get("page", "1"))
        per_page = min(int(request.args.get("per_page", "30")), size)
        last = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        return Reply(200, chunk, self._link(path, page, last))

    @route(
        "POST",
        "/app/installations/{installation_id}/access_tokens",
        "/app/installations/{installation_id}/access_tokens",
    )
    def access_token(self, request: Request, params: dict[str, str]) -> Reply:
        header = request.headers.get("Authorization", "")
        problem = self._check_jwt(header.removeprefix("Bearer "))
        if problem:
            return Reply(401, {"message": problem, "documentation_url": "x"})
        self.issued += 1
        token = f"ghs_installation{self.issued:04d}secret"
        self.valid_tokens.add(token)
        expires = self.clock() + 3600
        from datetime import UTC, datetime

        stamp = datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = response_body(
            "/app/installations/{installation_id}/access_tokens",
            "post",
            201,
            token=token,
            expires_at=stamp,
        )
        return Reply(201, body)

    def _check_jwt(self, jwt: str) -> str | None:
        if self.app_public_key is None:
            return "no app configured"
        try:
            header_b64, payload_b64, signature_b64 = jwt.split(".")
            pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
            header = json.loads(base64.urlsafe_b64decode(pad(header_b64)))
            payload = json.loads(base64.urlsafe_b64decode(pad(payload_b64)))
            signature = base64.urlsafe_b64decode(pad(signature_b64))
            self.app_public_key.verify(
                signature,
                f"{header_b64}.{payload_b64}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except Exception as exc:  # any malformed JWT is a 401
            return f"'Authorization' JWT is invalid: {type(exc).__name__}"
        if header.get("alg") != "RS256" or payload.get("iss") != self.app_id:
            return "wrong alg or issuer"
        if (
            not payload["iat"] <= self.clock() < payload["exp"]
            or payload["exp"] - payload["iat"] > 600
        ):
            return "'Expiration time' claim ('exp') is too far in the future or expired"
        return None

    @route("POST", "/repos/{owner}/{repo}/pulls", "/repos/{owner}/{repo}/pulls")
    def create_pull(self, request: Request, params: dict[str, str]) -> Reply:
        data = request.get_json()
        for pr in self.pulls.values():
            if pr["head"]["ref"] == data["head"] and pr["state"] == "open":
                return Reply(
                    422,
                    {
                        "message": "Validation Failed",
                        "errors": [
                            {
                                "resource": "PullRequest",
                                "code": "custom",
                                "message": "A pull request already exists for "
                                f"{params['owner']}:{data['head']}.",
                            }
                        ],
                        "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
                        "status": "422",
                    },
                )
        number = len(self.pulls) + 1
        pr = response_body(
            "/repos/{owner}/{repo}/pulls",
            "post",
            201,
            number=number,
            title=data["title"],
            body=data.get("body"),
            state="open",
            draft=bool(data.get("draft")),
            user=user("writgate-bot"),
            node_id=f"PR_{number}",
            html_url=f"https://github.example/{params['owner']}/{params['repo']}/pull/{number}",
            head={"ref": data["head"], "sha": "a" * 40},
            base={"ref": data["base"], "sha": "b" * 40},
            merged=False,
            merged_at=None,
            merge_commit_sha=None,
        )
        self.pulls[number] = pr
        return Reply(201, pr)

    @route(
        "GET",
        "/repos/{owner}/{repo}/pulls/{pull_number}",
        "/repos/{owner}/{repo}/pulls/{pull_number}",
    )
    def get_pull(self, request: Request, params: dict[str, str]) -> Reply:
        return self._pull(int(params["pull_number"]))

    @route(
        "PATCH",
        "/repos/{owner}/{repo}/pulls/{pull_number}",
        "/repos/{owner}/{repo}/pulls/{pull_number}",
    )
    def update_pull(self, request: Request, params: dict[str, str]) -> Reply:
        reply = self._pull(int(params["pull_number"]))
        if reply.status == 200:
            reply.body.update(request.get_json())
        return reply

    @route("GET", "/repos/{owner}/{repo}/pulls", None)
    def list_pulls(self, request: Request, params: dict[str, str]) -> Reply:
        head = request.args.get("head", "").partition(":")[2]
        found = [
            pr for pr in self.pulls.values() if pr["head"]["ref"] == head and pr["state"] == "open"
        ]
        return Reply(200, found)

    @route("PUT", "/repos/{owner}/{repo}/pulls/{pull_number}/merge", None)
    def merge_pull(self, request: Request, params: dict[str, str]) -> Reply:
        pr = self.pulls[int(params["pull_number"])]
        if "writgate/merge-gate" not in {
            s["context"] for s in self.statuses if s["state"] == "success"
        }:
            return Reply(
                405,
                {
                    "message": 'Required status check "writgate/merge-gate" is expected.',
                    "documentation_url": "x",
                },
            )
        pr.update(merged=True, merged_at=NOW, state="closed", merge_commit_sha="c" * 40)
        return Reply(
            200, {"sha": "c" * 40, "merged": True, "message": "Pull Request successfully merged"}
        )

    @route(
        "GET",
        "/repos/{owner}/{repo}/pulls/{pull_number}/files",
        "/repos/{owner}/{repo}/pulls/{pull_number}/files",
    )
    def pull_files(self, request: Request, params: dict[str, str]) -> Reply:
        return self._paged(request, request.path, self.files)

    @route(
        "GET",
        "/repos/{owner}/{repo}/pulls/{pull_number}/commits",
        "/repos/{owner}/{repo}/pulls/{pull_number}/commits",
    )
    def pull_commits(self, request: Request, params: dict[str, str]) -> Reply:
        item = schema_example(
            "commit", sha="a" * 40, parents=[{"sha": "b" * 40, "url": "https://x"}]
        )
        item["commit"]["message"] = "Fix the answer"
        item["author"] = user("dev")
        return Reply(200, [item])

    @route(
        "GET",
        "/repos/{owner}/{repo}/pulls/{pull_number}/reviews",
        "/repos/{owner}/{repo}/pulls/{pull_number}/reviews",
    )
    def pull_reviews(self, request: Request, params: dict[str, str]) -> Reply:
        return self._paged(request, request.path, self.reviews)

    @route(
        "GET",
        "/repos/{owner}/{repo}/commits/{ref}/status",
        "/repos/{owner}/{repo}/commits/{ref}/status",
    )
    def combined_status(self, request: Request, params: dict[str, str]) -> Reply:
        latest: dict[str, dict[str, Any]] = {}
        for status in self.statuses:
            latest.setdefault(status["context"], status)
        simple = [
            schema_example(
                "simple-commit-status",
                context=s["context"],
                state=s["state"],
                description=s["description"],
                target_url=s["target_url"],
            )
            for s in latest.values()
        ]
        body = schema_example(
            "combined-commit-status",
            sha=params["ref"],
            statuses=simple,
            state="success",
            total_count=len(simple),
        )
        return Reply(200, body)

    @route(
        "GET",
        "/repos/{owner}/{repo}/commits/{ref}/statuses",
        "/repos/{owner}/{repo}/commits/{ref}/statuses",
    )
    def list_statuses(self, request: Request, params: dict[str, str]) -> Reply:
        return self._paged(request, request.path, self.statuses)

    @route("POST", "/repos/{owner}/{repo}/statuses/{sha}", "/repos/{owner}/{repo}/statuses/{sha}")
    def create_status(self, request: Request, params: dict[str, str]) -> Reply:
        data = request.get_json()
        status = response_body(
            "/repos/{owner}/{repo}/statuses/{sha}",
            "post",
            201,
            id=len(self.statuses) + 1,
            state=data["state"],
            context=data.get("context", "default"),
            description=data.get("description"),
            target_url=data.get("target_url"),
            creator=user("writgate-bot"),
        )
        self.statuses.insert(0, status)
        return Reply(201, status)

    def _check_run_body(self, run: dict[str, Any]) -> dict[str, Any]:
        return schema_example(
            "check-run",
            id=run["id"],
            head_sha=run["head_sha"],
            name=run["name"],
            status=run["status"],
            conclusion=run.get("conclusion"),
            output={
                "title": run["title"],
                "summary": run["summary"],
                "text": None,
                "annotations_count": run["annotations"],
                "annotations_url": "https://x",
            },
        )

    def _apply_output(self, run: dict[str, Any], data: dict[str, Any]) -> None:
        output = data.get("output")
        if output:
            run["title"], run["summary"] = output["title"], output["summary"]
            batch = output.get("annotations") or []
            assert len(batch) <= 50, "GitHub refuses more than 50 annotations per request"
            self.annotation_batches.append(len(batch))
            run["annotations"] += len(batch)

    @route("POST", "/repos/{owner}/{repo}/check-runs", "/repos/{owner}/{repo}/check-runs")
    def create_check_run(self, request: Request, params: dict[str, str]) -> Reply:
        data = request.get_json()
        run = {
            "id": 9000 + len(self.check_runs) + 1,
            "head_sha": data["head_sha"],
            "name": data["name"],
            "status": "completed" if data.get("conclusion") else data.get("status", "queued"),
            "conclusion": data.get("conclusion"),
            "title": "",
            "summary": "",
            "annotations": 0,
        }
        self._apply_output(run, data)
        self.check_runs[run["id"]] = run
        return Reply(201, self._check_run_body(run))

    @route(
        "PATCH",
        "/repos/{owner}/{repo}/check-runs/{check_run_id}",
        "/repos/{owner}/{repo}/check-runs/{check_run_id}",
    )
    def update_check_run(self, request: Request, params: dict[str, str]) -> Reply:
        run = self.check_runs[int(params["check_run_id"])]
        data = request.get_json()
        if data.get("conclusion"):
            run.update(status="completed", conclusion=data["conclusion"])
        elif data.get("status"):
            run["status"] = data["status"]
        self._apply_output(run, data)
        return Reply(200, self._check_run_body(run))

    @route("GET", "/repos/{owner}/{repo}/check-runs/{check_run_id}", None)
    def get_check_run(self, request: Request, params: dict[str, str]) -> Reply:
        return Reply(200, self._check_run_body(self.check_runs[int(params["check_run_id"])]))

    @route(
        "GET",
        "/repos/{owner}/{repo}/commits/{ref}/check-runs",
        "/repos/{owner}/{repo}/commits/{ref}/check-runs",
    )
    def list_check_runs(self, request: Request, params: dict[str, str]) -> Reply:
        runs = [
            self._check_run_body(r)
            for r in self.check_runs.values()
            if r["head_sha"] == params["ref"]
        ]
        return Reply(200, {"total_count": len(runs), "check_runs": runs})

    @route(
        "GET",
        "/repos/{owner}/{repo}/issues/{issue_number}/comments",
        "/repos/{owner}/{repo}/issues/{issue_number}/comments",
    )
    def list_comments(self, request: Request, params: dict[str, str]) -> Reply:
        return self._paged(request, request.path, self.comments)

    def _comment(self, body: str) -> dict[str, Any]:
        return schema_example(
            "issue-comment",
            id=500 + len(self.comments) + 1,
            body=body,
            user=user("writgate-bot"),
            html_url="https://github.example/c",
        )

    @route(
        "POST",
        "/repos/{owner}/{repo}/issues/{issue_number}/comments",
        "/repos/{owner}/{repo}/issues/{issue_number}/comments",
    )
    def create_comment(self, request: Request, params: dict[str, str]) -> Reply:
        comment = self._comment(request.get_json()["body"])
        self.comments.append(comment)
        return Reply(201, comment)

    @route(
        "PATCH",
        "/repos/{owner}/{repo}/issues/comments/{comment_id}",
        "/repos/{owner}/{repo}/issues/comments/{comment_id}",
    )
    def update_comment(self, request: Request, params: dict[str, str]) -> Reply:
        for comment in self.comments:
            if comment["id"] == int(params["comment_id"]):
                comment["body"] = request.get_json()["body"]
                return Reply(200, comment)
        return Reply(422, {"message": "Validation Failed", "documentation_url": "x"})

    @route(
        "POST",
        "/repos/{owner}/{repo}/issues/{issue_number}/labels",
        "/repos/{owner}/{repo}/issues/{issue_number}/labels",
    )
    def add_labels(self, request: Request, params: dict[str, str]) -> Reply:
        for name in request.get_json()["labels"]:
            if name not in self.labels:
                self.labels.append(name)
        return Reply(200, [schema_example("label", name=n) for n in self.labels])

    @route("POST", "/api/graphql", None)
    def graphql(self, request: Request, params: dict[str, str]) -> Reply:
        data = request.get_json()
        node = data["variables"]["id"]
        pr = next((p for p in self.pulls.values() if p["node_id"] == node), None)
        if pr is None:
            return Reply(200, {"data": None, "errors": [{"message": f"Could not resolve {node}"}]})
        found = re.search(r"convertPullRequestToDraft|markPullRequestReadyForReview", data["query"])
        assert found is not None, data["query"]
        pr["draft"] = found.group(0) == "convertPullRequestToDraft"
        return Reply(200, {"data": {found.group(0): {"pullRequest": {"isDraft": pr["draft"]}}}})


def _explain(exc: Exception) -> str:
    parts = [f"{type(exc).__name__}: {exc}"]
    cause = exc.__cause__
    while cause is not None:
        parts.append(str(cause)[:500])
        schema_errors = getattr(cause, "schema_errors", None)
        if schema_errors:
            parts.extend(str(e.message)[:300] for e in list(schema_errors)[:5])
        cause = cause.__cause__
    return " <- ".join(parts)


def _drop_unmapped_discriminators(node: Any) -> None:
    """Remove ``discriminator``s that have no ``mapping`` (the ``oneOf`` beside them stays).

    GitHub's description of ``POST /repos/{owner}/{repo}/check-runs`` (and the PATCH) uses
    ``discriminator: {propertyName: status}`` without a mapping, which by the OpenAPI rules means
    the value ``in_progress`` names ``#/components/schemas/in_progress`` — a schema that does not
    exist, so a strict validator rejects every valid body. The ``oneOf`` alternatives still say
    what GitHub accepts (``conclusion`` required when ``status`` is ``completed``) and are kept.
    """
    if isinstance(node, dict):
        if isinstance(node.get("discriminator"), dict) and "mapping" not in node["discriminator"]:
            del node["discriminator"]
        for value in node.values():
            _drop_unmapped_discriminators(value)
    elif isinstance(node, list):
        for value in node:
            _drop_unmapped_discriminators(value)


def _allow_null_in_nullable_enums(node: Any) -> None:
    """Add ``None`` to the ``enum`` of ``nullable`` schemas.

    GitHub marks e.g. a check run's ``conclusion`` ``nullable: true`` with an ``enum`` that
    lacks ``null``; it sends ``"conclusion": null`` for every run still in progress, which a
    strict validator rejects. OpenAPI 3.0.3 says ``nullable: true`` allows null: honour that.
    """
    if isinstance(node, dict):
        enum = node.get("enum")
        if node.get("nullable") is True and isinstance(enum, list) and None not in enum:
            enum.append(None)
        for value in node.values():
            _allow_null_in_nullable_enums(value)
    elif isinstance(node, list):
        for value in node:
            _allow_null_in_nullable_enums(value)


@cache
def _openapi() -> OpenAPI:
    """GitHub's description, served under ``/api/v3`` on any host (built once per session)."""
    description = copy.deepcopy(spec_dict())
    description["servers"] = [{"url": "/api/v3"}]
    _drop_unmapped_discriminators(description)
    _allow_null_in_nullable_enums(description)
    return OpenAPI.from_dict(description)


@contextmanager
def serve(fake: FakeGitHub) -> Iterator[FakeGitHub]:
    """Run ``fake`` on a free 127.0.0.1 port; its API lives under ``/api/v3`` (like GHE)."""
    server = make_server("127.0.0.1", 0, fake, threaded=True)
    port = server.server_port
    fake.base_url = f"http://127.0.0.1:{port}/api/v3"
    fake.git_url = f"http://127.0.0.1:{port}/git"
    fake.openapi = _openapi()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        thread.join(10)
