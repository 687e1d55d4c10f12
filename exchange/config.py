"""Settings: defaults that work on a developer machine, a TOML file, then ``LIENTHONG_*`` variables.

Precedence (last wins): built-in defaults < TOML file (``--config`` or ``LIENTHONG_CONFIG``) <
environment. Every setting name is also its environment variable: ``database_url`` is
``LIENTHONG_DATABASE_URL``.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Settings", "load_settings"]


@dataclass(frozen=True)
class Settings:
    """Everything the hub needs to know about its environment."""

    database_url: str = "postgresql://postgres@127.0.0.1:5432/lienthong"
    database_schema: str = "lienthong"
    database_pool_size: int = 32  # connections per hub process
    # Longest a statement may take before it is abandoned (the database is then unavailable).
    database_timeout_seconds: float = 30.0
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    # Prefix of the exchange and queue names, so several hubs (or test runs) share one broker.
    broker_prefix: str = "lienthong"
    # "quorum" (default, runs unchanged on a RabbitMQ cluster) or "classic".
    queue_type: str = "quorum"
    blob_dir: str = "var/blobs"
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 50 * 1024 * 1024
    max_depth: int = 64
    max_attachments: int = 100
    token_ttl_seconds: int = 3600
    inbox_max_limit: int = 500
    inbox_max_bytes: int = 1024 * 1024  # a page of the inbox stops growing past this much JSON
    # How long an unconfirmed outbox row waits before the relay publishes it again.
    outbox_retry_seconds: float = 5.0
    consumer_prefetch: int = 256
    # Redeliveries a quorum queue allows before it dead-letters a message (to the dead-letter
    # queue the hub drains: nothing is dropped).
    delivery_limit: int = 20
    # A delivery routed this long ago and still not delivered is published again.
    redeliver_after_seconds: float = 300.0
    reconcile_interval_seconds: float = 60.0
    broker_reconnect_seconds: float = 2.0  # between attempts while RabbitMQ is unreachable
    shutdown_timeout_seconds: float = 15.0  # SIGTERM: in-flight work gets this long, then exit
    log_level: str = "INFO"
    # RFC 3161 time-stamping authority for signed tree heads (empty: heads are not timestamped).
    tsa_url: str = ""
    # The hub's signing key for ledger heads and receipts: a PKCS#12 file, or a PKCS#11 token
    # (library, token label, key label). Its passphrase or PIN comes from LIENTHONG_LEDGER_SECRET.
    # With neither, a self-signed development key is made at <blob_dir>/../hub-dev-key.p12.
    ledger_p12: str = ""
    ledger_pkcs11_lib: str = ""
    ledger_token: str = ""
    ledger_key_label: str = ""
    ledger_head_interval_seconds: float = 60.0
    # Signature verification at the hub's door (issue 4). Anchors and intermediates are PEM/DER
    # files (in the environment: comma-separated paths).
    trust_anchors: tuple[str, ...] = ()
    trust_intermediates: tuple[str, ...] = ()
    revocation_mode: str = "soft-fail"  # or "hard-fail", "embedded-only" (offline)
    # "enforce": refuse TOTAL-FAILED packages; "report-only": accept and record everything.
    # An agency's own setting in the registry (verify_policy) wins.
    verify_policy: str = "enforce"
    verify_indeterminate: str = "accept"  # or "refuse"
    cpu_workers: int = 0  # processes that parse and verify packages; 0 = one per core
    # Slow clients: a request head must be complete this long after its first byte;
    # an idle keep-alive connection is closed after keepalive_timeout_seconds; a body that
    # pauses longer than body_idle_timeout_seconds, or is not complete body_timeout_seconds
    # after it started, is refused with 408 (its temporary file removed at once).
    header_timeout_seconds: float = 10.0
    keepalive_timeout_seconds: float = 75.0
    body_idle_timeout_seconds: float = 30.0
    body_timeout_seconds: float = 900.0
    # A body must arrive at this average rate at least (after its first body_idle seconds).
    body_min_rate_bytes_per_second: int = 4096
    # A reader that takes nothing of a response for this long is cut off.
    send_timeout_seconds: float = 60.0
    # Failed logins at POST /v1/token, per client id and per remote address, in a sliding
    # window (429 auth.throttled with Retry-After once over).
    login_failures_per_client: int = 10
    login_failures_per_address: int = 30
    login_window_seconds: float = 300.0
    # POST /v1/ledger/heads (signs, maybe time-stamps): per calling agency.
    head_signs_per_window: int = 6
    head_sign_window_seconds: float = 60.0
    # TLS: PEM certificate chain and key. With tls_client_ca, clients may present a certificate
    # issued by that CA; one registered to an agency (`lienthong agency client-cert`)
    # authenticates the connection as that agency.
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    # When set, GET /metrics needs "Authorization: Bearer <metrics_token>".
    metrics_token: str = ""

    def replace(self, **changes: object) -> Settings:
        """A copy with some settings changed."""
        return dataclasses.replace(self, **changes)


def _coerce(name: str, raw: object, kind: type) -> object:
    if kind is int:
        return int(str(raw).replace("_", ""))
    if kind is float:
        return float(raw)  # type: ignore[arg-type]
    if kind is tuple:
        if isinstance(raw, str):
            return tuple(p.strip() for p in raw.split(",") if p.strip())
        if not isinstance(raw, list | tuple):
            raise ValueError(f"setting {name} must be a list")
        return tuple(str(p) for p in raw)
    return str(raw)


def load_settings(path: str | os.PathLike | None = None, env: dict | None = None) -> Settings:
    """Read settings from defaults, an optional TOML file and the environment."""
    env = os.environ if env is None else env
    values: dict[str, object] = {}
    types = {f.name: _field_type(f) for f in dataclasses.fields(Settings)}
    path = path or env.get("LIENTHONG_CONFIG")
    if path:
        with Path(path).open("rb") as fh:
            data = tomllib.load(fh)
        unknown = sorted(set(data) - set(types))
        if unknown:
            raise ValueError(f"unknown settings in {path}: {', '.join(unknown)}")
        values.update(data)
    for name in types:
        key = f"LIENTHONG_{name.upper()}"
        if key in env:
            values[name] = env[key]
    coerced = {name: _coerce(name, raw, types[name]) for name, raw in values.items()}
    settings = Settings(**coerced)  # type: ignore[arg-type]
    for name, allowed in _CHOICES.items():
        if getattr(settings, name) not in allowed:
            raise ValueError(f"{name} must be one of {', '.join(allowed)}")
    return settings


_CHOICES = {
    "queue_type": ("quorum", "classic"),
    "revocation_mode": ("soft-fail", "hard-fail", "embedded-only"),
    "verify_policy": ("enforce", "report-only"),
    "verify_indeterminate": ("accept", "refuse"),
}


def _field_type(f: dataclasses.Field) -> type:
    return {"int": int, "float": float, "tuple[str, ...]": tuple}.get(str(f.type), str)
