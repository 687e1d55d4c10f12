"""Settings: defaults that work on a developer machine, a TOML file, then ``LIENTHONG_*`` variables.

Precedence (last wins): built-in defaults < TOML file (``--config`` or ``LIENTHONG_CONFIG``) <
environment. Every setting name is also its environment variable: ``database_url`` is
``LIENTHONG_DATABASE_URL``. Values are checked (pydantic-settings): a bad one is refused with
the setting's and its variable's name, an unknown setting in the file is refused too.
"""

from __future__ import annotations

import contextvars
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = ["Settings", "load_settings"]


class Settings(BaseSettings):
    """Everything the hub needs to know about its environment, checked: a bad value is refused
    with the setting's (and its variable's) name."""

    model_config = SettingsConfigDict(
        env_prefix="LIENTHONG_", frozen=True, extra="forbid", validate_default=True
    )

    database_url: str = "postgresql://postgres@127.0.0.1:5432/lienthong"
    database_schema: str = "lienthong"
    database_pool_size: int = 32  # connections per hub process
    # Longest a statement may take before it is abandoned (the database is then unavailable).
    database_timeout_seconds: float = 30.0
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    # Prefix of the exchange and queue names, so several hubs (or test runs) share one broker.
    broker_prefix: str = "lienthong"
    # "quorum" (default, runs unchanged on a RabbitMQ cluster) or "classic".
    queue_type: Literal["quorum", "classic"] = "quorum"
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
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
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
    # Signature verification at the hub's door. Anchors and intermediates are PEM/DER
    # files (in the environment: comma-separated paths).
    trust_anchors: Annotated[tuple[str, ...], NoDecode] = ()
    trust_intermediates: Annotated[tuple[str, ...], NoDecode] = ()
    revocation_mode: Literal["soft-fail", "hard-fail", "embedded-only"] = "soft-fail"
    # "enforce": refuse TOTAL-FAILED packages; "report-only": accept and record everything.
    # An agency's own setting in the registry (verify_policy) wins.
    verify_policy: Literal["enforce", "report-only"] = "enforce"
    verify_indeterminate: Literal["accept", "refuse"] = "accept"
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
    # Key file for secrets the hub must read back (webhook and VDXP secrets, sealed with
    # AES-GCM): base64 keys, one per line, the first current. LIENTHONG_SECRET_KEY wins; with
    # neither, a development key is made at <blob_dir>/../secret.key.
    secret_key_file: str = ""
    # Push delivery (exchange/push/): retry intervals in seconds, the last one repeating until
    # push_ttl_seconds after the push began; connect and whole-request timeouts; attempts at
    # once per endpoint in each hub process; the circuit breaker (failures in a row, seconds
    # open); how often due pushes are looked for; an extra CA file for https endpoints.
    push_retry_schedule: str = "30,120,1200,3600"
    push_ttl_seconds: float = 72 * 3600.0
    push_connect_timeout_seconds: float = 5.0
    push_timeout_seconds: float = 30.0
    push_concurrency: int = 4
    push_breaker_failures: int = 5
    push_breaker_seconds: float = 60.0
    push_poll_seconds: float = 0.2
    push_ca_file: str = ""
    # After `agency push --new-secret` the old secret signs too (a second signature) this long.
    push_secret_overlap_seconds: float = 86_400.0
    # When set, /v1/admin/... takes "Authorization: Bearer <admin_token>" (operators).
    admin_token: str = ""
    # A package addressed to a retired code: "redirect" sends it to the code's successor(s),
    # "refuse" answers 422 recipient.inactive (see exchange/succession.py).
    retired_recipient: Literal["refuse", "redirect"] = "redirect"
    # Federation (exchange/federation): this hub's id among its peers (empty: not federated);
    # the routing keys it takes from peers (its subtrees, e.g. "H49.#"; "#" for a national
    # hub); the RabbitMQ management API that configures upstreams and policies (credentials
    # from amqp_url unless given here); how often peers' tree heads are countersigned.
    hub_id: str = ""
    federation_bindings: Annotated[tuple[str, ...], NoDecode] = ()
    federation_management_url: str = "http://127.0.0.1:15672"
    federation_witness_interval_seconds: float = 60.0
    # KPI deadlines in working days (Vietnam's calendar) for statuses 01, 03 and 06.
    kpi_deadline_01_days: Annotated[int, Field(ge=0, le=365)] = 0
    kpi_deadline_03_days: Annotated[int, Field(ge=0, le=365)] = 1
    kpi_deadline_06_days: Annotated[int, Field(ge=0, le=365)] = 10
    # GET /v1/reports/kpi reads a whole period's events: per calling agency, per minute.
    kpi_reports_per_minute: Annotated[int, Field(ge=1)] = 12
    # Web console: session lifetime; failed sign-ins of one user before it is locked, how long.
    console_session_seconds: Annotated[int, Field(ge=60)] = 8 * 3600
    console_lockout_failures: Annotated[int, Field(ge=1)] = 5
    console_lockout_seconds: int = 900

    @field_validator("trust_anchors", "trust_intermediates", "federation_bindings", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        """In the environment a list of files is comma-separated."""
        if isinstance(value, str):
            return tuple(p.strip() for p in value.split(",") if p.strip())
        return value

    @field_validator("push_retry_schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        """Comma-separated seconds, each above 0 and at most a day."""
        try:
            steps = [float(part) for part in value.split(",")]
        except ValueError:
            raise ValueError("comma-separated seconds, e.g. 30,120,1200,3600") from None
        if not all(0 < step <= 86_400 for step in steps):
            raise ValueError("each interval is above 0 and at most 86400 seconds")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
    ):
        """Precedence: what the code passes, then the environment, then the TOML file."""
        toml = TomlConfigSettingsSource(settings_cls, _TOML_FILE.get())
        if _ENVIRONMENT.get() is not None:  # load_settings(env=...): those variables only
            return init_settings, toml
        return init_settings, env_settings, toml

    def replace(self, **changes: object) -> Settings:
        """A copy with some settings changed (checked like the others)."""
        return _checked(lambda: type(self).model_validate({**self.model_dump(), **changes}))


# The TOML file and environment of the load in progress (settings_customise_sources is a
# classmethod).
_TOML_FILE: contextvars.ContextVar[Path | None] = contextvars.ContextVar("toml", default=None)
_ENVIRONMENT: contextvars.ContextVar[dict | None] = contextvars.ContextVar("env", default=None)


def load_settings(path: str | os.PathLike | None = None, env: dict | None = None) -> Settings:
    """Read settings from defaults, an optional TOML file and the environment (``env``: the
    variables to read instead of ``os.environ``). Raises ValueError naming what is wrong."""
    env = os.environ if env is None else env
    path = path or env.get("LIENTHONG_CONFIG")
    if path and not Path(path).is_file():
        raise ValueError(f"the settings file {path} does not exist")
    toml = _TOML_FILE.set(Path(path) if path else None)
    environment = _ENVIRONMENT.set(None if env is os.environ else dict(env))
    try:
        if env is os.environ:
            return _checked(Settings)
        given = {
            name: env[f"LIENTHONG_{name.upper()}"]
            for name in Settings.model_fields
            if f"LIENTHONG_{name.upper()}" in env
        }
        return _checked(lambda: Settings(**given))
    finally:
        _TOML_FILE.reset(toml)
        _ENVIRONMENT.reset(environment)


def _checked(make) -> Settings:
    try:
        return make()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"])
            variable = f"LIENTHONG_{name.upper()}"
            problems.append(f"setting {name} ({variable}): {error['msg']}")
        raise ValueError("; ".join(problems)) from None
