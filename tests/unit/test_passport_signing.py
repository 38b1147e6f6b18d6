"""DSSE signing: our verifier and securesystemslib's (a verifier we did not write)."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import SSlibKey

from passport import (
    PAYLOAD_TYPE,
    KeyFileError,
    SignatureError,
    canonical_json,
    generate_signing_key,
    load_passport,
    load_public_key,
    load_signing_key,
    pae,
    passport_id,
    sign_envelope,
    sign_statement,
    verify_envelope,
    verify_passport,
)
from tests.unit.passport_samples import sample_statement

SCHEMES = {"ed25519": "ed25519", "p256": "ecdsa-sha2-nistp256"}


def _sslib_key(key: Any) -> SSlibKey:
    public = key.public_key
    return SSlibKey.from_crypto(public.key, keyid=public.keyid, scheme=SCHEMES[public.type])


def _flip(text: str, index: int) -> str:
    """Flip one bit of the decoded bytes of a base64 string and re-encode."""
    raw = bytearray(base64.b64decode(text))
    raw[index % len(raw)] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def test_pae_matches_the_dsse_spec_example() -> None:
    # From the DSSE protocol spec: PAE("http://example.com/HelloWorld", "hello world").
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
    assert pae("t", b"") == b"DSSEv1 1 t 0 "


@pytest.mark.parametrize("key_type", ["ed25519", "p256"])
def test_securesystemslib_accepts_our_envelope_and_rejects_a_flipped_byte(key_type: str) -> None:
    key = generate_signing_key(key_type)  # type: ignore[arg-type]
    statement = sample_statement()
    envelope = sign_statement(statement, key)
    sslib_key = _sslib_key(key)

    accepted = Envelope.from_dict(copy.deepcopy(envelope)).verify([sslib_key], 1)
    assert list(accepted) == [key.keyid]
    assert Envelope.from_dict(copy.deepcopy(envelope)).pae() == pae(
        PAYLOAD_TYPE, base64.b64decode(envelope["payload"])
    )

    for index in (0, 17, 100):
        tampered = copy.deepcopy(envelope)
        tampered["payload"] = _flip(tampered["payload"], index)
        with pytest.raises(VerificationError):
            Envelope.from_dict(copy.deepcopy(tampered)).verify([sslib_key], 1)
        with pytest.raises(SignatureError, match="does not match the payload"):
            verify_envelope(tampered, [key.public_key])

        bad_sig = copy.deepcopy(envelope)
        bad_sig["signatures"][0]["sig"] = _flip(bad_sig["signatures"][0]["sig"], index)
        with pytest.raises(VerificationError):
            Envelope.from_dict(copy.deepcopy(bad_sig)).verify([sslib_key], 1)
        with pytest.raises(SignatureError):
            verify_envelope(bad_sig, [key.public_key])


@pytest.mark.parametrize("key_type", ["ed25519", "p256"])
def test_sign_and_verify_round_trip(key_type: str) -> None:
    key = generate_signing_key(key_type)  # type: ignore[arg-type]
    statement = sample_statement()
    envelope = sign_statement(statement, key)
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    assert envelope["signatures"][0]["keyid"] == key.keyid
    der = key.public_key.key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert key.keyid == hashlib.sha256(der).hexdigest()
    # The payload is the canonical statement, so the passport id is its SHA-256.
    payload = base64.b64decode(envelope["payload"])
    assert payload == canonical_json(statement)
    assert passport_id(statement) == "sha256:" + hashlib.sha256(payload).hexdigest()
    verified_statement, verified = verify_passport(envelope, [key.public_key])
    assert verified_statement == statement
    assert verified.keyids == (key.keyid,)


def test_wrong_key_is_refused_naming_both_keys() -> None:
    signer, stranger = generate_signing_key(), generate_signing_key("p256")
    envelope = sign_statement(sample_statement(), signer)
    with pytest.raises(SignatureError, match="not by a trusted key") as caught:
        verify_envelope(envelope, [stranger.public_key])
    assert signer.keyid[:16] in str(caught.value)
    assert stranger.keyid[:16] in str(caught.value)


def test_keyid_is_a_hint_only() -> None:
    signer, stranger = generate_signing_key(), generate_signing_key()
    envelope = sign_statement(sample_statement(), signer)
    # A signature claiming the trusted key's id but made by another key is refused.
    forged = sign_statement(sample_statement(), stranger)
    forged["signatures"][0]["keyid"] = signer.keyid
    with pytest.raises(SignatureError):
        verify_envelope(forged, [signer.public_key])
    # Without a keyid every trusted key is tried.
    del envelope["signatures"][0]["keyid"]
    assert verify_envelope(envelope, [stranger.public_key, signer.public_key]).keyids == (
        signer.keyid,
    )


def test_wrong_payload_type_is_refused() -> None:
    key = generate_signing_key()
    envelope = sign_envelope(b"{}", "application/json", key)
    with pytest.raises(SignatureError, match="payload type is 'application/json'"):
        verify_envelope(envelope, [key.public_key])
    # Relabelling the type breaks the signature too (PAE covers the type).
    envelope["payloadType"] = PAYLOAD_TYPE
    with pytest.raises(SignatureError, match="does not match"):
        verify_envelope(envelope, [key.public_key])


def test_unsigned_or_malformed_envelopes_are_refused() -> None:
    key = generate_signing_key()
    with pytest.raises(SignatureError, match="not signed"):
        verify_passport(load_passport(json.dumps(sample_statement()).encode()), [key.public_key])
    envelope = sign_statement(sample_statement(), key)
    with pytest.raises(SignatureError, match="no signatures"):
        verify_envelope({**envelope, "signatures": []}, [key.public_key])
    with pytest.raises(SignatureError, match="not valid base64"):
        verify_envelope({**envelope, "payload": "***"}, [key.public_key])
    with pytest.raises(SignatureError, match="no verification key"):
        verify_envelope(envelope, [])


def test_url_safe_unpadded_base64_is_accepted_as_dsse_allows() -> None:
    key = generate_signing_key()
    envelope = sign_statement(sample_statement(), key)
    payload = base64.b64decode(envelope["payload"])
    envelope["payload"] = base64.urlsafe_b64encode(payload).decode().rstrip("=")
    sig = base64.b64decode(envelope["signatures"][0]["sig"])
    envelope["signatures"][0]["sig"] = base64.urlsafe_b64encode(sig).decode().rstrip("=")
    assert verify_passport(envelope, [key.public_key])[0] == sample_statement()


def test_multiple_signers() -> None:
    one, two = generate_signing_key(), generate_signing_key("p256")
    envelope = sign_statement(sample_statement(), [one, two])
    assert len(envelope["signatures"]) == 2
    assert verify_envelope(envelope, [two.public_key]).keyids == (two.keyid,)
    assert set(verify_envelope(envelope, [one.public_key, two.public_key]).keyids) == {
        one.keyid,
        two.keyid,
    }


def test_key_files_round_trip_and_bad_keys_fail_clearly(tmp_path: Path) -> None:
    key = generate_signing_key("p256")
    private = tmp_path / "k.pem"
    private.write_bytes(key.to_pem())
    assert load_signing_key(private).keyid == key.keyid
    assert load_public_key(private).keyid == key.keyid  # a private key also gives the public
    public = tmp_path / "k.pub"
    public.write_bytes(key.public_key.to_pem())
    assert load_public_key(public).keyid == key.keyid
    assert "PRIVATE" not in repr(key) and key.keyid in repr(key)

    encrypted = tmp_path / "enc.pem"
    encrypted.write_bytes(key.to_pem(password=b"s3cret"))
    assert load_signing_key(encrypted, b"s3cret").keyid == key.keyid
    with pytest.raises(KeyFileError, match="encrypted"):
        load_signing_key(encrypted)
    with pytest.raises(KeyFileError, match="password is wrong"):
        load_signing_key(encrypted, b"wrong")

    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    with pytest.raises(KeyFileError, match=r"garbage\.pem: is not a PEM private key"):
        load_signing_key(garbage)
    with pytest.raises(KeyFileError, match="is not a PEM public key"):
        load_public_key(garbage)
    with pytest.raises(KeyFileError, match="cannot read"):
        load_signing_key(tmp_path / "missing.pem")

    rsa_key = tmp_path / "rsa.pem"
    rsa_key.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=1024).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(KeyFileError, match="RSAPrivateKey keys are not supported"):
        load_signing_key(rsa_key)
    p384 = tmp_path / "p384.pem"
    p384.write_bytes(
        ec.generate_private_key(ec.SECP384R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(KeyFileError, match="secp384r1 is not supported"):
        load_signing_key(p384)
