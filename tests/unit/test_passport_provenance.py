"""The signed provenance block of a PR body and recovering the writer from it."""

from __future__ import annotations

import base64
import json
import re

import pytest

from passport import (
    NO_PROVENANCE,
    find_provenance_blocks,
    generate_signing_key,
    merge_trailers,
    parse_trailers,
    recover_provenance,
    render_provenance_block,
    trailer_values,
)
from tests.unit.passport_samples import HEAD, sample_writer

KEY = generate_signing_key()
TRAILERS = {"Writgate-Run": ["run_01hx"], "Assisted-by": ["command:anthropic/claude-sonnet-4.6"]}


def _body(key=KEY, head: str = HEAD, run_id: str | None = None) -> str:  # type: ignore[no-untyped-def]
    block = render_provenance_block(sample_writer(), head_sha=head, key=key, run_id=run_id)
    return "Fixes the webhook.\n\nTags: ci, payments\n\n" + block


def test_untampered_block_verifies_and_returns_the_signed_writer() -> None:
    writer, verified, reason = recover_provenance(_body(), TRAILERS, HEAD, None, [KEY.public_key])
    assert verified is True
    assert "verified" in reason and KEY.keyid[:16] in reason
    assert writer is not None
    assert writer["runId"] == "run_01hx"
    assert writer["tags"] == ["ci", "payments"]
    assert writer["metadata"] == {"ticket": "PAY-742"}
    assert writer["promptSha256"] == "ab" * 32
    # The expected run id may come from the caller instead of the trailers.
    assert recover_provenance(_body(), {}, HEAD, "run_01hx", [KEY.public_key])[1] is True


def test_editing_the_visible_tags_changes_nothing_the_gate_sees() -> None:
    body = _body()
    edited = body.replace("Tags: ci, payments", "Tags: ci, payments, skip-gate").replace(
        "`payments`", "`payments`, `skip-gate`"
    )
    assert edited != body
    assert recover_provenance(edited, TRAILERS, HEAD, None, [KEY.public_key]) == (
        recover_provenance(body, TRAILERS, HEAD, None, [KEY.public_key])
    )


def _tamper_payload(body: str, change) -> str:  # type: ignore[no-untyped-def]
    data = find_provenance_blocks(body)[0]
    envelope = json.loads(base64.b64decode(data))
    payload = json.loads(base64.b64decode(envelope["payload"]))
    change(payload)
    envelope["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    new_data = base64.b64encode(json.dumps(envelope).encode()).decode()
    return re.sub(r"(<!-- writgate-provenance v1\n)[\s\S]*?(-->)", rf"\g<1>{new_data}\n\2", body)


def test_tampered_tags_in_the_signed_block_are_refused() -> None:
    body = _tamper_payload(_body(), lambda p: p["writer"]["tags"].append("skip-gate"))
    writer, verified, reason = recover_provenance(body, TRAILERS, HEAD, None, [KEY.public_key])
    assert (writer, verified) == (None, False)
    assert reason.startswith("provenance signature does not verify")
    assert "does not match the payload" in reason


def test_one_flipped_character_in_the_block_is_refused() -> None:
    body = _body()
    lines = body.splitlines(keepends=True)
    index = lines.index("<!-- writgate-provenance v1\n") + 3  # a line inside the payload
    line = lines[index]
    lines[index] = line[:40] + ("A" if line[40] != "A" else "B") + line[41:]
    tampered = "".join(lines)
    assert tampered != body
    writer, verified, reason = recover_provenance(tampered, TRAILERS, HEAD, None, [KEY.public_key])
    assert (writer, verified) == (None, False)
    assert reason.startswith(("provenance signature does not verify", "the provenance block is"))


@pytest.mark.parametrize(
    ("body", "trailers", "head", "run_id", "keys", "expected"),
    [
        ("no block here", TRAILERS, HEAD, None, "key", NO_PROVENANCE),
        (None, TRAILERS, HEAD, None, "key", NO_PROVENANCE),
        ("block", TRAILERS, "2" * 40, None, "key", "is for head 111111111111, not 222222222222"),
        ("block", TRAILERS, HEAD, "run_other", "key", "is for run run_01hx, not run_other"),
        ("block", {"writgate-run": ["run_zzz"]}, HEAD, None, "key", "trailers name run_zzz"),
        ("block", {}, HEAD, None, "key", "no run id to match"),
        ("block", TRAILERS, HEAD, None, "none", "no provenance verification key"),
        ("block", TRAILERS, HEAD, None, "other", "not by a trusted key"),
        ("twice", TRAILERS, HEAD, None, "key", "2 provenance blocks"),
        ("garbage", TRAILERS, HEAD, None, "key", "not a base64 DSSE envelope"),
    ],
)
def test_untrusted_blocks_give_the_reason(  # type: ignore[no-untyped-def]
    body, trailers, head, run_id, keys, expected
) -> None:
    if body == "block":
        body = _body()
    elif body == "twice":
        body = _body() + "\n" + _body()
    elif body == "garbage":
        body = "<!-- writgate-provenance v1\nbm90IGpzb24=\n-->"
    public_keys = {
        "key": [KEY.public_key],
        "none": [],
        "other": [generate_signing_key().public_key],
    }
    writer, verified, reason = recover_provenance(body, trailers, head, run_id, public_keys[keys])
    assert (writer, verified) == (None, False)
    assert expected in reason


def test_a_block_copied_from_another_pr_is_refused() -> None:
    other_pr = _body(head="3" * 40)
    assert recover_provenance(other_pr, TRAILERS, HEAD, None, [KEY.public_key])[1] is False


def test_block_is_an_html_comment_with_a_visible_summary() -> None:
    block = render_provenance_block(sample_writer(), head_sha=HEAD, key=KEY)
    assert block.startswith("> writgate run `run_01hx` · model `anthropic/claude-sonnet-4.6`")
    assert "<!-- writgate-provenance v1\n" in block and block.rstrip().endswith("-->")
    assert all(len(line) <= 76 for line in block.splitlines()[2:-1])


def test_trailers() -> None:
    message = "Fix it\n\nBody text.\n\nWritgate-Run: run_1\nAssisted-by: command:m\n"
    assert parse_trailers(message) == {"Writgate-Run": ["run_1"], "Assisted-by": ["command:m"]}
    assert parse_trailers("Subject: only\n") == {}
    assert parse_trailers("Fix\n\nnot a trailer line\nKey: v\n") == {}
    merged = merge_trailers([message, "Next\n\nwritgate-run: run_2\nWritgate-Run: run_1\n"])
    assert trailer_values(merged, "WRITGATE-RUN") == ["run_1", "run_2"]


def test_a_body_saved_with_crlf_line_endings_still_verifies() -> None:
    # Editing a PR body in a browser turns its line endings into CRLF.
    body = _body().replace("\n", "\r\n")
    assert recover_provenance(body, TRAILERS, HEAD, None, [KEY.public_key])[1] is True
