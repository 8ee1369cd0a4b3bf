"""One settings model, read from the environment (prefix ``CORPUS_``).

Every default works with the local stack that ``make stack`` starts, so a
fresh clone runs without configuration. Each service subclasses
:class:`CorpusSettings` to add its own knobs and its default port.
"""

from __future__ import annotations

import re
import sys
from typing import Literal, TypeVar

from minio.helpers import check_bucket_name
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError


class CorpusSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CORPUS_", extra="ignore")

    service_name: str = "corpus"
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "INFO"
    # The services' event loop: uvloop spends less CPU per request and socket than asyncio's own loop
    # (ingest and search spent 7-25% less CPU per image in paired ingest benchmark runs); "asyncio" to compare.
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"

    # Browser origins allowed to call the APIs (CORS; JSON list): the admin page, which the search service serves.
    cors_origins: list[str] = ["http://127.0.0.1:8003", "http://localhost:8003"]

    mongo_url: str = "mongodb://127.0.0.1:27017/?replicaSet=rs0"
    mongo_db: str = "corpus"

    es_url: str = "http://127.0.0.1:9200"
    es_index_prefix: str = "corpus"

    minio_endpoint: str = "127.0.0.1:9000"
    minio_access_key: str = "minioadmin"
    minio_secret_key: str = "minioadmin"
    minio_secure: bool = False
    minio_region: str = "us-east-1"
    minio_bucket: str = "corpus"

    @field_validator("minio_bucket")
    @classmethod
    def _s3_bucket_name(cls, name: str) -> str:
        """S3's naming rule (3-63 lower-case letters, digits, dots and hyphens, ...), checked as the MinIO SDK
        checks it: a name it refuses is a configuration error at start, not a minute of retries and a traceback."""
        try:
            check_bucket_name(name, strict=True)
        except ValueError as exc:
            raise ValueError(f"{exc}: a bucket name is 3 to 63 lower-case letters, digits, dots and hyphens, starting and ending with a letter or digit") from None
        return name
    # Host:port that clients outside the stack use to reach MinIO (presigned URLs
    # are signed for this host). Defaults to minio_endpoint.
    minio_public_endpoint: str | None = None
    presign_ttl_seconds: int = Field(default=900, ge=1, le=7 * 24 * 3600)
    blob_threads: int = Field(default=8, ge=1)
    # Concurrent HTTP connections for blob writes.
    blob_connections: int = Field(default=32, ge=1)

    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    amqp_exchange: str = "corpus"
    # Unacknowledged deliveries a consumer holds at once: the back-pressure knob.
    amqp_prefetch: int = Field(default=64, ge=1)
    # Attempts (with exponential back-off) before a failing message is parked.
    consume_attempts: int = Field(default=5, ge=1)
    consume_backoff_seconds: float = Field(default=0.2, ge=0)
    # While a store the handler needs is unavailable (shared/outages.py), the message is retried for this
    # long without counting attempts, then returned to the queue: an outage parks nothing. Keep it under
    # RabbitMQ's consumer_timeout (30 min), past which the broker closes a channel holding an unacked delivery.
    consume_outage_patience_seconds: float = Field(default=600, gt=0, le=1500)
    # How long a starting service waits for MongoDB, MinIO and RabbitMQ before it gives up (exit 1).
    startup_patience_seconds: float = Field(default=60, gt=0)

    # Idempotency-Key answers are replayed this long; a request running under a key renews its claim every
    # third of the lease, and if its process dies a repeat may take the key over once the lease runs out.
    idempotency_ttl_seconds: int = Field(default=24 * 3600, ge=60)
    idempotency_lease_seconds: float = Field(default=30.0, gt=0)

    outbox_poll_seconds: float = Field(default=0.5, gt=0)
    # After a commit nudges the relay, it waits this long so a burst of commits is published in one pass.
    outbox_gather_seconds: float = Field(default=0.05, ge=0)

    # The bootstrap admin's API key. Unset: the annotation service creates an
    # admin with a random key on first start and prints it once.
    admin_key: SecretStr | None = None
    # Let requests without a key read (search, fetch). Off: every request needs a key.
    anonymous_read: bool = False

    def queue_name(self, service: str | None = None) -> str:
        """The durable queue that one service consumes (competing consumers)."""
        return f"{self.amqp_exchange}.{service or self.service_name}"


S = TypeVar("S", bound=CorpusSettings)
ENV_PREFIX = "CORPUS_"


class ConfigurationError(ValueError):
    """A setting from the environment that does not parse or is out of range, named by its variable."""


def load_settings(cls: type[S], **values: object) -> S:
    """``cls`` read from the environment; a bad value raises :class:`ConfigurationError` saying which
    ``CORPUS_*`` variable is wrong and why, instead of pydantic's traceback."""
    try:
        return cls(**values)
    except SettingsError as error:  # a complex value (list, dict) that is not JSON
        match = re.search(r'field "(\w+)"', str(error))
        name = ENV_PREFIX + (match.group(1).upper() if match else "?")
        cause = f" ({error.__cause__})" if error.__cause__ else ""
        raise ConfigurationError(f'{name}: not valid JSON{cause}; lists are written as JSON, e.g. ["a", "b"]') from None
    except ValidationError as error:
        problems = [
            f"{ENV_PREFIX}{'_'.join(map(str, problem['loc'])).upper()}={problem.get('input')!r}: {problem['msg']}"
            for problem in error.errors()
        ]
        raise ConfigurationError("; ".join(problems)) from None


def settings_or_exit(cls: type[S], **values: object) -> S:
    """:func:`load_settings` for a process's entry point: a bad setting ends it with one line on stderr
    and exit status 2."""
    try:
        return load_settings(cls, **values)
    except ConfigurationError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
