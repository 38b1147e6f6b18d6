"""DSSE signing and verification with ed25519 or ECDSA P-256 keys (PKCS#8 / SPKI PEM).

The envelope is the DSSE v1 JSON envelope: ``{"payloadType", "payload": base64,
"signatures": [{"keyid", "sig": base64}]}``; signatures are over the pre-authentication encoding
``PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body``. ECDSA signatures are
DER-encoded over SHA-256 (what sigstore, in-toto and securesystemslib produce and accept).
A key id is the hex SHA-256 of the public key's SubjectPublicKeyInfo DER.

Passport payloads are the RFC 8785 canonical JSON of the statement, so the passport id is the
SHA-256 of the signed payload bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from .digest import canonical_json
from .errors import InvalidPassportError, KeyFileError, SignatureError
from .files import PAYLOAD_TYPE, LoadedPassport, check_statement, decode_base64

__all__ = [
    "KeyType",
    "PublicKey",
    "SigningKey",
    "VerifiedEnvelope",
    "generate_signing_key",
    "load_public_key",
    "load_signing_key",
    "pae",
    "sign_envelope",
    "sign_statement",
    "verify_envelope",
    "verify_passport",
]

KeyType = Literal["ed25519", "p256"]
_PublicKeyTypes = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
_PrivateKeyTypes = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey


def pae(payload_type: str, payload: bytes) -> bytes:
    """The DSSE v1 pre-authentication encoding of ``payload``."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def _key_type(key: _PublicKeyTypes) -> KeyType:
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ed25519"
    return "p256"


@dataclass(frozen=True)
class PublicKey:
    """A verification key with its key id (hex SHA-256 of the SPKI DER)."""

    key: _PublicKeyTypes
    keyid: str
    type: KeyType

    @classmethod
    def from_crypto(cls, key: _PublicKeyTypes) -> PublicKey:
        der = key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return cls(key=key, keyid=hashlib.sha256(der).hexdigest(), type=_key_type(key))

    def to_pem(self) -> bytes:
        """The SubjectPublicKeyInfo PEM."""
        return self.key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def verify(self, signature: bytes, data: bytes) -> bool:
        """Whether ``signature`` is this key's signature of ``data``."""
        try:
            if isinstance(self.key, ed25519.Ed25519PublicKey):
                self.key.verify(signature, data)
            else:
                self.key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class SigningKey:
    """A private signing key (ed25519 or ECDSA P-256)."""

    key: _PrivateKeyTypes
    public_key: PublicKey

    @classmethod
    def from_crypto(cls, key: _PrivateKeyTypes) -> SigningKey:
        return cls(key=key, public_key=PublicKey.from_crypto(key.public_key()))

    @property
    def keyid(self) -> str:
        return self.public_key.keyid

    @property
    def type(self) -> KeyType:
        return self.public_key.type

    def sign(self, data: bytes) -> bytes:
        """The signature of ``data`` (ECDSA: DER over SHA-256)."""
        if isinstance(self.key, ed25519.Ed25519PrivateKey):
            return self.key.sign(data)
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))

    def to_pem(self, password: bytes | None = None) -> bytes:
        """The PKCS#8 PEM (encrypted when ``password`` is given)."""
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password)
            if password
            else serialization.NoEncryption()
        )
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )

    def __repr__(self) -> str:  # never print key material
        return f"SigningKey(type={self.type!r}, keyid={self.keyid!r})"


def generate_signing_key(type: KeyType = "ed25519") -> SigningKey:
    """A new random signing key."""
    if type == "ed25519":
        return SigningKey.from_crypto(ed25519.Ed25519PrivateKey.generate())
    if type == "p256":
        return SigningKey.from_crypto(ec.generate_private_key(ec.SECP256R1()))
    raise KeyFileError(f"unsupported key type {type!r}: use ed25519 or p256", field="type")


def _read(source: str | Path | bytes) -> tuple[bytes, str]:
    if isinstance(source, bytes):
        return source, "<key>"
    try:
        return Path(source).read_bytes(), str(source)
    except OSError as exc:
        raise KeyFileError(f"cannot read: {exc.strerror or exc}", file=str(source)) from exc


def _check_curve(key: object, where: str) -> None:
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        if not isinstance(key.curve, ec.SECP256R1):
            raise KeyFileError(
                f"ECDSA curve {key.curve.name} is not supported: use P-256 or ed25519", file=where
            )
    elif not isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        raise KeyFileError(
            f"{type(key).__name__.removeprefix('_')} keys are not supported: use ed25519 or "
            "ECDSA P-256",
            file=where,
        )


def load_signing_key(source: str | Path | bytes, password: bytes | None = None) -> SigningKey:
    """A PKCS#8 PEM private key (ed25519 or P-256) from a file path or PEM bytes."""
    data, where = _read(source)
    try:
        key = serialization.load_pem_private_key(data, password=password)
    except TypeError as exc:  # encrypted without a password, or a password for a plain key
        raise KeyFileError(
            "the key is encrypted: set WRITGATE_SIGNING_KEY_PASSWORD"
            if password is None
            else "the key is not encrypted but a password was given",
            file=where,
        ) from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(
            "is not a PEM private key (or the password is wrong)", file=where
        ) from exc
    _check_curve(key, where)
    return SigningKey.from_crypto(key)  # type: ignore[arg-type]


def load_public_key(source: str | Path | bytes) -> PublicKey:
    """A SubjectPublicKeyInfo PEM public key (ed25519 or P-256); a private key PEM also works."""
    data, where = _read(source)
    try:
        key: object = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        try:
            key = serialization.load_pem_private_key(data, password=None).public_key()
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise KeyFileError("is not a PEM public key", file=where) from exc
    _check_curve(key, where)
    return PublicKey.from_crypto(key)  # type: ignore[arg-type]


def sign_envelope(
    payload: bytes, payload_type: str, keys: SigningKey | Sequence[SigningKey]
) -> dict[str, Any]:
    """A DSSE envelope of ``payload`` signed by ``keys``."""
    signers = [keys] if isinstance(keys, SigningKey) else list(keys)
    if not signers:
        raise KeyFileError("at least one signing key is needed")
    message = pae(payload_type, payload)
    return {
        "payloadType": payload_type,
        "payload": base64.b64encode(payload).decode("ascii"),
        "signatures": [
            {"keyid": key.keyid, "sig": base64.b64encode(key.sign(message)).decode("ascii")}
            for key in signers
        ],
    }


def sign_statement(
    statement: Mapping[str, Any], keys: SigningKey | Sequence[SigningKey]
) -> dict[str, Any]:
    """The passport DSSE envelope: the canonical JSON of ``statement`` signed by ``keys``."""
    return sign_envelope(canonical_json(statement), PAYLOAD_TYPE, keys)


@dataclass(frozen=True)
class VerifiedEnvelope:
    """A DSSE envelope whose signature verified: the payload and the key ids that signed it."""

    payload_type: str
    payload: bytes
    keyids: tuple[str, ...]


def _b64(value: Any, field: str) -> bytes:
    if not isinstance(value, str):
        raise SignatureError(f"envelope field {field} is not a base64 string")
    try:
        return decode_base64(value)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError(f"envelope field {field} is not valid base64") from exc


def verify_envelope(
    envelope: Mapping[str, Any],
    keys: Sequence[PublicKey],
    *,
    payload_type: str = PAYLOAD_TYPE,
) -> VerifiedEnvelope:
    """Verify a DSSE envelope against trusted ``keys``; raise :class:`SignatureError` if not.

    At least one signature must verify with one of ``keys``. A signature's keyid, when present,
    only selects which key to try (DSSE keyids are hints, not trust).
    """
    if not keys:
        raise SignatureError("no verification key given")
    if not isinstance(envelope, Mapping):
        raise SignatureError("the envelope is not a JSON object")
    actual_type = envelope.get("payloadType")
    if actual_type != payload_type:
        raise SignatureError(f"payload type is {actual_type!r}, expected {payload_type!r}")
    payload = _b64(envelope.get("payload"), "payload")
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or not signatures:
        raise SignatureError("the envelope has no signatures")
    message = pae(payload_type, payload)
    verified: list[str] = []
    for i, signature in enumerate(signatures):
        if not isinstance(signature, Mapping):
            raise SignatureError(f"signatures[{i}] is not an object")
        sig = _b64(signature.get("sig"), f"signatures[{i}].sig")
        keyid = signature.get("keyid") or ""
        candidates = [k for k in keys if not keyid or k.keyid == keyid]
        for key in candidates:
            if key.keyid not in verified and key.verify(sig, message):
                verified.append(key.keyid)
                break
    if not verified:
        offered = sorted({str(s.get("keyid") or "?")[:16] for s in signatures})
        trusted = sorted(k.keyid[:16] for k in keys)
        if not set(offered) & set(trusted):
            raise SignatureError(
                f"signed by key {', '.join(offered)}…, not by a trusted key ({', '.join(trusted)}…)"
            )
        raise SignatureError("the signature does not match the payload (tampered or corrupted)")
    return VerifiedEnvelope(payload_type=payload_type, payload=payload, keyids=tuple(verified))


def verify_passport(
    passport: LoadedPassport | Mapping[str, Any], keys: Sequence[PublicKey]
) -> tuple[dict[str, Any], VerifiedEnvelope]:
    """Verify a signed passport (a loaded passport or an envelope dict); return its statement."""
    envelope = passport.envelope if isinstance(passport, LoadedPassport) else passport
    if envelope is None:
        raise SignatureError("the passport is not signed (a bare statement, no DSSE envelope)")
    verified = verify_envelope(envelope, keys)
    try:
        statement = json.loads(verified.payload.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # not UTF-8, not JSON, too deep, huge numbers
        raise InvalidPassportError("the signed payload is not JSON", field="payload") from exc
    return check_statement(statement, "<signed payload>"), verified
