"""Every error the project raises, under one base, in the two branches the retry code uses.

- `TransientError`: worth trying again as it is (a lost connection, a deadlock, a broker that did
  not confirm). Retried with backoff; after too many attempts, dead-lettered.
- `PermanentError`: retrying cannot help (an event the ledger cannot apply, data the database
  refuses). Dead-lettered at once, with the reason.

Other errors (bad configuration, a key file) are for people, not for retries: they sit directly
under the base and end the command with a clear message.
"""

from __future__ import annotations


class ConektaIngestError(Exception):
    """Base of every error this project raises on purpose."""


class TransientError(ConektaIngestError):
    """Worth retrying as it is."""


class PermanentError(ConektaIngestError):
    """Retrying cannot help: dead-letter with the reason."""


class ConfigError(ConektaIngestError, ValueError):
    """A setting has a value the service cannot run with."""


class KeyFileError(ConektaIngestError, ValueError):
    """A key file is missing or is not the kind of key expected."""


class BadRequest(ConektaIngestError, ValueError):
    """An on-call request that does not say clearly what it wants (the message says why)."""


class PublishFailed(TransientError):
    """The broker did not confirm the message: treat it as not stored."""


class TransientDatabaseError(TransientError):
    """A deadlock, a serialization failure, a lock timeout: retry the transaction."""


class UnknownCharge(TransientError):
    """A refund or chargeback for a charge not booked yet: its payment may be in flight."""


class DatabaseUnavailable(TransientDatabaseError):
    """Cannot reach the database at all: hold the work until it is back."""


class DataRejected(PermanentError):
    """The database refuses this data for good (a CHECK, a type, a value out of range)."""


class UnknownToConekta(PermanentError):
    """A refund names a charge that is not booked, and Conekta's API does not know its order
    either: no later event can book it, so waiting cannot help."""


class UnapplicableEvent(PermanentError):
    """An event the ledger cannot apply (unknown currency, paid more than the order, ...)."""


class UnknownAccount(UnapplicableEvent):
    """A posting names an account the chart of accounts (domain/accounts.py) does not declare:
    a bug, never guessed."""


class CurrencyMismatch(UnapplicableEvent):
    """Money of one charge in two currencies (a refund in another than its charge's)."""


class UndecidableEvent(PermanentError):
    """Deciding this one event raised an error nobody meant (TypeError, KeyError…: a bug, or a
    body the domain cannot read). Retrying the same code on the same body cannot help: it is
    dead-lettered at once with its traceback, and the rest of its batch is applied."""

    @classmethod
    def of(cls, error: BaseException) -> ConektaIngestError:
        """`error` itself when the project raised it on purpose; else this, with its traceback."""
        if isinstance(error, ConektaIngestError):
            return error
        return cls(f"{type(error).__name__}: {error}").with_traceback(error.__traceback__)


class InvalidEvent(PermanentError, ValueError):
    """The body is not an event the service can take; the message says why, naming the field."""


class RetentionRefused(PermanentError):
    """A prune that would lose something: an export that does not match, the current month."""


class StopRequested(ConektaIngestError):
    """Asked to stop while waiting for the database: leave the work to be redelivered."""


class TaskFailing(ConektaIngestError):
    """A supervised task kept failing past its bound: the process exits non-zero."""


def is_permanent(exc: BaseException) -> bool:
    return isinstance(exc, PermanentError)


class ApiKeyRejected(ConektaIngestError):
    """Conekta's API refused the key (401/403): a person must fix CONEKTA_API_KEY."""


class ConektaApiUnavailable(TransientError):
    """Conekta's API kept failing (5xx, 429, timeouts) after every retry."""
