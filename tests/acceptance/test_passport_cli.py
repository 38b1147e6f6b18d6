"""``writgate passport build|show|verify`` and ``writgate keys signing …`` as a user runs them."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from passport import generate_signing_key, load_public_key, render_provenance_block
from tests.conftest import git

WRITGATE = str(Path(sys.executable).with_name("writgate"))


def writgate(*args: str, home: Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WRITGATE_")}
    environment["WRITGATE_HOME"] = str(home)
    environment["WRITGATE_DATABASE_URL"] = f"sqlite+aiosqlite:///{home / 'writgate.db'}"
    return subprocess.run(
        [WRITGATE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )


def key_pair(directory: Path, name: str, key_type: str = "ed25519") -> tuple[Path, Path]:
    """A private key file and its public key file (made in-process: keys are tested above)."""
    key = generate_signing_key(key_type)  # type: ignore[arg-type]
    private, public = directory / f"{name}.pem", directory / f"{name}.pub.pem"
    private.write_bytes(key.to_pem())
    public.write_bytes(key.public_key.to_pem())
    return private, public


def one_line_error(result: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    """The command failed with ``code`` and one readable line naming the problem."""
    assert result.returncode == code, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def change(git_repo: Path) -> Path:
    (git_repo / "src").mkdir()
    (git_repo / "src" / "app.py").write_text("print('hi')\n" * 3)
    (git_repo / "README.md").write_text("hello\nworld\n")
    git(git_repo, "add", "-A")
    git(git_repo, "commit", "-qm", "Fix it\n\nWritgate-Run: run_01abc\nAssisted-by: command:m\n")
    return git_repo


def test_keys_generate_and_show_public(tmp_path: Path) -> None:
    for key_type in ("ed25519", "p256"):
        private = tmp_path / f"{key_type}.pem"
        result = writgate(
            "keys", "signing", "generate", "--out", str(private), "--type", key_type,
            "--json", home=tmp_path,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        info = json.loads(result.stdout)
        assert info["type"] == key_type
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
        public = Path(info["publicKey"])
        assert public == tmp_path / f"{key_type}.pub.pem"
        assert load_public_key(public).keyid == info["keyid"]
        assert "PRIVATE KEY" in private.read_text() and "PRIVATE" not in public.read_text()

        if key_type == "ed25519":
            shown = writgate("keys", "signing", "show-public", str(private), home=tmp_path)
            assert shown.returncode == 0
            assert shown.stdout == public.read_text()
            assert info["keyid"] in shown.stderr

    again = writgate("keys", "signing", "generate", "--out", str(private), home=tmp_path)
    one_line_error(again, 2, "p256.pem", "already exists")


def test_build_sign_show_verify(tmp_path: Path, change: Path) -> None:
    key, _ = key_pair(tmp_path, "k")
    out = tmp_path / "passport.json"
    built = writgate(
        "passport", "build", "--repo", str(change), "--base", "HEAD~", "--head", "HEAD",
        "--repository", "acme/web", "--sign-key", str(key), "--out", str(out), "--json",
        home=tmp_path,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    summary = json.loads(built.stdout)
    assert summary["signed"] is True and summary["passportId"].startswith("sha256:")
    assert summary["totals"] == {"files": 2, "additions": 4, "deletions": 0, "lines": 4}
    envelope = json.loads(out.read_text())
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["predicate"]["change"]["repository"] == "acme/web"
    # Unsigned trailers only tell that an agent claims the change.
    assert statement["predicate"]["writer"]["kind"] == "external"
    assert statement["predicate"]["writer"]["runId"] is None

    verified = writgate("passport", "verify", str(out), "--key", str(tmp_path / "k.pub.pem"),
                        home=tmp_path)  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    assert summary["passportId"] in verified.stdout

    shown = writgate("passport", "show", str(out), "--key", str(tmp_path / "k.pub.pem"),
                     home=tmp_path)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("<!-- writgate-passport -->")
    assert "signature verified" in shown.stdout and "src/app.py" in shown.stdout
    as_json = writgate("passport", "show", str(out), "--json", home=tmp_path)
    assert json.loads(as_json.stdout)["statement"] == statement

    # A wrong key, a tampered payload and an unsigned file fail verification with the reason.
    key_pair(tmp_path, "other", "p256")
    wrong = writgate("passport", "verify", str(out), "--key", str(tmp_path / "other.pub.pem"),
                     home=tmp_path)  # fmt: skip
    one_line_error(wrong, 1, "verification failed", "not by a trusted key")

    statement["predicate"]["provenanceVerified"] = True
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(envelope))
    result = writgate("passport", "verify", str(tampered), "--key", str(tmp_path / "k.pub.pem"),
                      home=tmp_path)  # fmt: skip
    one_line_error(result, 1, "tampered")

    bare = tmp_path / "bare.json"
    built = writgate("passport", "build", "--repo", str(change), "--base", "HEAD~", "--head",
                     "HEAD", "--out", str(bare), home=tmp_path)  # fmt: skip
    assert built.returncode == 0 and "unsigned" in built.stdout
    assert json.loads(bare.read_text())["_type"] == "https://in-toto.io/Statement/v1"
    result = writgate("passport", "verify", str(bare), "--key", str(tmp_path / "k.pub.pem"),
                      home=tmp_path)  # fmt: skip
    one_line_error(result, 1, "not signed")


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, change: Path) -> None:
    out = str(tmp_path / "p.json")
    base = ["passport", "build", "--repo", str(change), "--out", out]
    one_line_error(
        writgate(*base, "--base", "nope", "--head", "HEAD", home=tmp_path),
        2, "unknown revision 'nope'",
    )  # fmt: skip
    plain = tmp_path / "plain"
    plain.mkdir()
    one_line_error(
        writgate("passport", "build", "--repo", str(plain), "--base", "HEAD~", "--head", "HEAD",
                 "--out", out, home=tmp_path),
        2, "not a git repository",
    )  # fmt: skip
    bad_key = tmp_path / "bad.pem"
    bad_key.write_text("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    one_line_error(
        writgate(*base, "--base", "HEAD~", "--head", "HEAD", "--sign-key", str(bad_key),
                 home=tmp_path),
        2, "bad.pem", "not a PEM private key",
    )  # fmt: skip
    malformed = tmp_path / "malformed.json"
    malformed.write_text('{"_type": "https://in-toto.io/Statement/v1",\n  "subject": [}')
    one_line_error(writgate("passport", "show", str(malformed), home=tmp_path), 2,
                   "malformed.json:2:15", "not valid JSON")  # fmt: skip
    one_line_error(
        writgate("passport", "verify", str(malformed), "--key", str(bad_key), home=tmp_path),
        2, "bad.pem",
    )  # fmt: skip
    one_line_error(
        writgate("passport", "show", str(tmp_path / "missing.json"), home=tmp_path),
        2, "missing.json", "cannot read",
    )  # fmt: skip
    assert not Path(out).exists()


def test_pr_body_provenance_is_trusted_only_when_signed(tmp_path: Path, change: Path) -> None:
    from passport import load_signing_key

    key, _ = key_pair(tmp_path, "k")

    head = git(change, "rev-parse", "HEAD").strip()
    writer = {"kind": "agent", "runId": "run_01abc", "model": "m", "tags": ["ci"],
              "metadata": {"ticket": "PAY-1"}}  # fmt: skip
    block = render_provenance_block(writer, head_sha=head, key=load_signing_key(key))
    body = tmp_path / "body.md"
    body.write_text("Fix it.\n\nTags: ci\n\n" + block)

    def build(body_text: str) -> dict[str, object]:
        body.write_text(body_text)
        out = tmp_path / "p.json"
        result = writgate(
            "passport", "build", "--repo", str(change), "--base", "HEAD~", "--head", "HEAD",
            "--pr-body", str(body), "--trust-key", str(tmp_path / "k.pub.pem"), "--out", str(out),
            home=tmp_path,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        predicate: dict[str, object] = json.loads(out.read_text())["predicate"]
        return predicate

    original = "Fix it.\n\nTags: ci\n\n" + block
    trusted = build(original)
    assert trusted["provenanceVerified"] is True
    assert trusted["writer"]["tags"] == ["ci"]  # type: ignore[index]
    assert trusted["writer"]["runId"] == "run_01abc"  # type: ignore[index]

    edited = build(original.replace("Tags: ci", "Tags: ci, skip-gate"))
    assert edited == trusted

    lines = original.splitlines(keepends=True)
    lines[-3] = lines[-3][:10] + ("x" if lines[-3][10] != "x" else "y") + lines[-3][11:]
    tampered = build("".join(lines))
    assert tampered["provenanceVerified"] is False
    assert "provenance" in str(tampered["provenanceReason"])
    assert tampered["writer"]["runId"] is None  # type: ignore[index]


def test_writer_json_and_missing_run(tmp_path: Path, change: Path) -> None:
    writer = tmp_path / "writer.json"
    writer.write_text(json.dumps({"kind": "human", "title": "Hand-made", "tags": ["docs"]}))
    out = tmp_path / "p.json"
    build = ["passport", "build", "--repo", str(change), "--base", "HEAD~", "--head", "HEAD"]
    result = writgate(*build, "--writer-json", str(writer), "--out", str(out), home=tmp_path)
    assert result.returncode == 0, result.stderr
    predicate = json.loads(out.read_text())["predicate"]
    assert predicate["writer"]["title"] == "Hand-made"
    assert predicate["provenanceVerified"] is False
    missing = writgate(*build, "--run", "run_doesnotexist", "--out", str(out), home=tmp_path)
    one_line_error(missing, 2, "run_doesnotexist")
