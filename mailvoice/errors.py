"""Every error mailvoice raises, in one tree.

    MailvoiceError
    ├── ConfigError (ValueError)              a setting: names key, value and the expected form
    ├── AudioError
    │   ├── UnsupportedAudioError (ValueError)   not on the allowlist, or not audio at all
    │   ├── CorruptAudioError (ValueError)       on the allowlist but undecodable / truncated / empty
    │   └── AudioLimitError                      a decoder limit was hit
    │       ├── AudioTooLargeError               bytes
    │       ├── AudioTooLongError                duration
    │       ├── AudioBudgetError                 the mail's total audio (per-mail budget)
    │       └── DecodeTimeoutError (TimeoutError) wall time
    ├── EngineError
    │   ├── UnknownEngineError (LookupError)     lists the known names
    │   ├── MissingExtraError (ImportError)      names the extra to install
    │   ├── ModelNotFoundError (FileNotFoundError)
    │   ├── ModelIntegrityError (ValueError)      a packaged model file differs from its sha256 pin
    │   └── SynthesisError / TranscriptionError
    ├── SecretError
    │   ├── KeyFileError (PermissionError)       missing key, loose mode (gives the chmod)
    │   ├── UnsealError                          tampered, moved or unknown-key ciphertext
    │   └── PgpKeyError (ValueError)             an OpenPGP key is secret, unreadable, revoked, expired, sign-only
    ├── StoreError
    ├── PipelineError                         an item failed even its own quarantine: retried after a backoff
    ├── MailError
    │   ├── MimeLimitError (ValueError)          depth, part count, size, parse time
    │   ├── SourceError (ConnectionError)        IMAP / Maildir
    │   └── DeliveryError (ConnectionError)      SMTP; .permanent for 5xx
    │       └── PgpRequiredError                 pgp = "required" and a recipient has no usable key
    └── Quarantine                               control flow: park the item with its reason

Every message names the file, message, key or host:port at fault and what to do about it.
"""

from __future__ import annotations


class MailvoiceError(Exception):
    """Base of all mailvoice errors."""


class ConfigError(MailvoiceError, ValueError):
    """A configuration value is missing or malformed."""


class AudioError(MailvoiceError):
    """Audio could not be decoded or encoded."""


class UnsupportedAudioError(AudioError, ValueError):
    """The content is not an allowed audio format."""


class CorruptAudioError(AudioError, ValueError):
    """The content claims an allowed format but cannot be decoded."""


class AudioLimitError(AudioError):
    """A decoder limit (bytes, duration, wall time) was exceeded."""


class AudioTooLargeError(AudioLimitError):
    """The encoded audio is larger than the byte limit."""


class AudioTooLongError(AudioLimitError):
    """The decoded audio is longer than the duration limit."""


class AudioBudgetError(AudioLimitError):
    """The part would take the mail over its budget of decoded audio."""

    def __init__(self, message: str, *, declared: bool = False) -> None:
        super().__init__(message)
        self.declared = declared
        """True when refused from the container's declared length, before any decoding."""


class DecodeTimeoutError(AudioLimitError, TimeoutError):
    """Decoding took longer than the wall-time limit."""


class EngineError(MailvoiceError):
    """A speech engine failed to load or run."""


class UnknownEngineError(EngineError, LookupError):
    """No engine is registered under that name."""


class MissingExtraError(EngineError, ImportError):
    """An optional dependency is not installed."""


class ModelNotFoundError(EngineError, FileNotFoundError):
    """A model could not be resolved to files on disk."""


class ModelIntegrityError(EngineError, ValueError):
    """A packaged model file differs from the sha256 pinned in the manifest."""


class TranscriptionError(EngineError):
    """The ASR engine failed on an input."""


class SynthesisError(EngineError):
    """The TTS engine failed on an input."""


class SecretError(MailvoiceError):
    """Key material is missing, unsafe, or a ciphertext does not open."""


class KeyFileError(SecretError, PermissionError):
    """The key file is missing or has unsafe permissions."""


class UnsealError(SecretError):
    """A sealed record failed authentication (tampered, moved, or unknown key)."""


class PgpKeyError(SecretError, ValueError):
    """An OpenPGP key cannot be used: secret material, unreadable, revoked, expired or without encryption subkey."""


class StoreError(MailvoiceError):
    """The message store failed."""


class PipelineError(MailvoiceError):
    """An item could not be processed nor quarantined; it stays at its source for a later try."""


class MailError(MailvoiceError):
    """A mail could not be parsed, fetched or delivered."""


class MimeLimitError(MailError, ValueError):
    """A MIME structure exceeded a parser limit."""


class SourceError(MailError, ConnectionError):
    """An IMAP account or Maildir folder could not be read."""


class DeliveryError(MailError, ConnectionError):
    """Outgoing mail could not be delivered."""

    def __init__(self, message: str, *, permanent: bool = False, code: int | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.code = code


class PgpRequiredError(DeliveryError):
    """pgp = "required" and a recipient has no usable OpenPGP key: the mail is held, never sent in plaintext."""

    def __init__(self, missing: tuple[tuple[str, str], ...]) -> None:
        super().__init__(
            f'not sent: pgp = "required" and {len(missing)} recipient(s) have no usable OpenPGP key '
            "(import one with `mailvoice keys pgp import FILE`)"
        )
        self.missing = missing


class Quarantine(MailvoiceError):
    """Control flow: park the item with this reason; the rest of the mailbox goes on."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
