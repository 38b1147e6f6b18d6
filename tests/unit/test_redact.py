"""The kernel redactor: credential formats, the host's own credentials, lines of a stream."""

from __future__ import annotations

import pytest

from writgate.redact import Redactor, host_secret_values, redact

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def test_formats_without_a_prefix_of_their_own() -> None:
    assert redact(f"token {JWT} used") == "token [REDACTED:jwt] used"
    assert redact(f"export AWS_SECRET_ACCESS_KEY={AWS_SECRET}") == (
        "export AWS_SECRET_ACCESS_KEY=[REDACTED:aws-secret-access-key]"
    )
    assert redact(f'aws_secret_access_key: "{AWS_SECRET}"').count("[REDACTED") == 1
    # Alone, 40 characters of base64 are not a secret (a git object id in base64 looks the same).
    assert redact(AWS_SECRET) == AWS_SECRET
    assert redact("sk-ant-api03-" + "a" * 40) == "[REDACTED:anthropic-key]"


def test_the_hosts_credentials_are_hidden_by_value(monkeypatch: pytest.MonkeyPatch) -> None:
    legacy = "0123456789abcdef0123456789abcdef01234567"  # no known format
    monkeypatch.setenv("GITHUB_TOKEN", legacy)
    monkeypatch.setenv("WRITGATE_GITHUB_TOKEN", "v1.installation-token-value")
    monkeypatch.setenv("WRITGATE_SIGNING_KEY_FILE", "/etc/writgate/key.pem")
    monkeypatch.setenv("WRITGATE_SERVER_WORKER", "off")
    assert redact(f"fetch with {legacy} failed") == "fetch with [REDACTED] failed"
    assert redact("header v1.installation-token-value") == "header [REDACTED]"
    values = host_secret_values()
    assert legacy in values and "/etc/writgate/key.pem" not in values and "off" not in values
    assert host_secret_values({"OPENAI_API_KEY": "sk-xxxxxxxx", "TOKEN_TTL": "60"}) == [
        "sk-xxxxxxxx"
    ]


def test_a_private_key_block_printed_line_by_line() -> None:
    redactor = Redactor()
    lines = [
        ("stdout", "key follows:"),
        ("stdout", "-----BEGIN OPENSSH PRIVATE KEY-----"),
        ("stderr", "unrelated stderr line"),
        ("stdout", "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtz"),
        ("stdout", "-----END OPENSSH PRIVATE KEY----- and after"),
        ("stdout", "back to normal"),
    ]
    out = [redactor.line(text, stream) for stream, text in lines]
    assert out == [
        "key follows:",
        "[REDACTED:private-key]",
        "unrelated stderr line",
        "[REDACTED:private-key]",
        "[REDACTED:private-key] and after",
        "back to normal",
    ]


def test_a_recognised_secret_is_hidden_where_it_appears_alone_later() -> None:
    redactor = Redactor(["agent-credential-value"])
    assert redactor.line(f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}") == (
        "AWS_SECRET_ACCESS_KEY=[REDACTED:aws-secret-access-key]"
    )
    assert redactor.line(f"again: {AWS_SECRET}", "stderr") == "again: [REDACTED]"
    assert redactor.text("uses agent-credential-value") == "uses [REDACTED]"


def test_a_validation_output_tail_is_redacted_before_it_is_cut() -> None:
    from writer.validation import output_tail

    token = "ghp_" + "a1B2c3D4e5" * 4
    output = "x" * 5000 + f"\nassert config == {{'token': '{token}'}}\n" + "y" * 1960
    tail = output_tail(output)
    assert len(tail) == 2000
    # Cut first, the tail would start inside the token and keep most of it.
    assert token[-16:] in output[-2000:]
    assert token[-16:] not in tail and "[REDACTED:github-token]" in tail
    key = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"
    assert "MIIEvQIBADANBgkq" not in output_tail("test output\n" + key + "1 passed\n")


@pytest.mark.parametrize(
    ("kind", "sample"),
    [
        ("github-token", "ghs_" + "a" * 36),
        ("github-token", "github_pat_" + "B" * 30),
        ("aws-access-key-id", "ASIA" + "Q" * 16),
        ("slack-token", "xoxp-1234567890-abc"),
        ("stripe-key", "rk_test_" + "c" * 20),
        ("openai-key", "sk-proj-" + "d" * 30),
        ("google-api-key", "AIza" + "e" * 35),
        ("writgate-key", "whsec_" + "f" * 20),
        ("private-key", "-----BEGIN EC PRIVATE KEY-----\nabc"),
        ("bearer", "Authorization: BEARER " + "g" * 20),
        ("url-credentials", "https://user:hunter22@example.com/x"),
    ],
)
def test_every_format_is_found_past_its_anchor_check(kind: str, sample: str) -> None:
    # Each pattern is only searched in texts holding one of its anchors: the anchors must match.
    assert f"[REDACTED:{kind}]" in redact(f"before {sample} after")


def test_problem_details_carry_no_secret() -> None:
    import json

    from writgate.app.server import problem

    token = "ghp_" + "k" * 36
    response = problem(
        422,
        "validation_failed",
        f"bad value {token}",
        f"detail with {token}",
        errors=[{"field": "/x", "message": f"not {token}"}],
    )
    body = json.loads(bytes(response.body))
    assert token[:16] not in json.dumps(body)
    assert body["errors"][0]["message"] == "not [REDACTED:github-token]"
    assert body["type"] == "https://writgate.dev/problems/validation_failed"


def test_log_records_are_redacted_by_the_handler_filter() -> None:
    import io
    import logging

    from writgate.redact import RedactingFilter

    token = "xoxb-" + "1234567890-" * 3
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("writgate.test.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("delivery to %s failed", f"https://hook:{token}@example.com/x")
        try:
            raise RuntimeError(f"token {token} refused")
        except RuntimeError:
            logger.exception("crashed")
        logger.warning("nothing to hide %d", 42)
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert token[:16] not in text and text.count("[REDACTED") == 2, text
    assert "nothing to hide 42" in text and "RuntimeError" in text
