"""Errors of the passport package.

::

    WritgateError
    └── PassportError                    root of this package
        ├── InvalidPassportError         (also InputError) a malformed passport file or field
        ├── RevisionError                (also InputError) not a repository, unknown revision
        ├── KeyFileError                 (also InputError) a key file that cannot be used
        └── SignatureError               a signature does not verify (wrong key, tampering)
"""

from __future__ import annotations

from writgate.errors import InputError, WritgateError

__all__ = [
    "InvalidPassportError",
    "KeyFileError",
    "PassportError",
    "RevisionError",
    "SignatureError",
]


class PassportError(WritgateError):
    """The Change Passport could not be built, read or verified."""

    code = "passport_error"


class InvalidPassportError(PassportError, InputError):
    """The passport is malformed."""

    code = "invalid_passport"


class RevisionError(PassportError, InputError):
    """The repository or revision cannot be read."""

    code = "invalid_revision"


class KeyFileError(PassportError, InputError):
    """The key cannot be used."""

    code = "invalid_key"


class SignatureError(PassportError):
    """The signature does not verify."""

    code = "signature_invalid"
