"""Webhook signatures and trigger extraction, with payloads shaped by GitHub's own schemas."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from forge.errors import WebhookRejected
from forge.webhooks import TRIGGERING, sign, trigger_fields, verify_signature
from tests.integration.github_fake import deep_update, schema_example

SECRET = "It's a Secret to Everybody"


def test_signature_matches_githubs_documented_example() -> None:
    # The example of GitHub's "Validating webhook deliveries" documentation.
    assert sign(SECRET, b"Hello, World!") == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )


def test_verify_accepts_the_right_signature_and_rejects_others() -> None:
    body = b'{"action": "opened"}'
    verify_signature(SECRET, body, sign(SECRET, body))
    with pytest.raises(WebhookRejected) as info:
        verify_signature(SECRET, body, sign("other secret", body))
    assert info.value.code == "bad_signature"
    with pytest.raises(WebhookRejected) as info:
        verify_signature(SECRET, body + b" ", sign(SECRET, body))
    assert info.value.code == "bad_signature"
    with pytest.raises(WebhookRejected) as info:
        verify_signature(SECRET, body, None)
    assert info.value.code == "signature_missing"
    sha1 = "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
    with pytest.raises(WebhookRejected):
        verify_signature(SECRET, body, sha1)
    with pytest.raises(WebhookRejected):
        verify_signature(SECRET, body, "sha256=ünïcode")


def test_pull_request_payload_fields() -> None:
    payload = schema_example("webhook-pull-request-synchronize")
    deep_update(
        payload,
        {
            "number": 12,
            "pull_request": {
                "number": 12,
                "head": {"ref": "writgate/fix", "sha": "a" * 40},
                "base": {"ref": "main", "sha": "b" * 40},
            },
            "repository": {"full_name": "acme/web"},
            "sender": {"login": "octocat"},
            "installation": {"id": 99, "node_id": "x"},
        },
    )
    assert payload["action"] == "synchronize"
    assert trigger_fields("pull_request", payload) == {
        "action": "synchronize",
        "repository": "acme/web",
        "installation_id": 99,
        "sender": "octocat",
        "number": 12,
        "head_ref": "writgate/fix",
        "head_sha": "a" * 40,
        "base_ref": "main",
    }


def test_check_suite_and_merge_group_payload_fields() -> None:
    suite = schema_example("webhook-check-suite-rerequested")
    deep_update(
        suite,
        {
            "check_suite": {"head_branch": "fix", "head_sha": "c" * 40, "pull_requests": []},
            "repository": {"full_name": "acme/web"},
        },
    )
    fields = trigger_fields("check_suite", suite)
    assert (fields["action"], fields["head_ref"], fields["head_sha"], fields["number"]) == (
        "rerequested",
        "fix",
        "c" * 40,
        None,
    )
    group = schema_example("webhook-merge-group-checks-requested")
    deep_update(
        group,
        {
            "merge_group": {
                "head_sha": "d" * 40,
                "head_ref": "refs/heads/gh-readonly-queue/main/pr-1",
                "base_ref": "refs/heads/main",
            },
            "repository": {"full_name": "acme/web"},
        },
    )
    fields = trigger_fields("merge_group", group)
    assert (fields["action"], fields["base_ref"], fields["head_sha"]) == (
        "checks_requested",
        "main",
        "d" * 40,
    )


def test_garbage_payload_fields_become_none() -> None:
    fields = trigger_fields(
        "pull_request",
        {
            "action": 3,
            "pull_request": "nope",
            "repository": {"full_name": 5},
            "installation": {"id": True},
        },
    )
    assert fields == {
        "action": None,
        "repository": None,
        "installation_id": None,
        "sender": None,
        "number": None,
        "head_ref": None,
        "head_sha": None,
        "base_ref": None,
    }


def test_triggering_actions_match_the_described_webhooks() -> None:
    assert TRIGGERING["pull_request"] == {"opened", "synchronize", "reopened"}
    assert TRIGGERING["check_suite"] == {"requested", "rerequested"}
    assert TRIGGERING["merge_group"] == {"checks_requested"}
