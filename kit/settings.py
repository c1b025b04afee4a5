"""One settings class for every service, read from FQ_* environment variables."""

from __future__ import annotations

from functools import lru_cache
from ipaddress import ip_network
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICE_PORTS = {"intake": 8001, "router": 8002, "mediation": 8003, "notify": 8004}
# Services for people, not for the event flow: no broker, no consumers; `make run` starts them
# after the four above.
WEB_PORTS = {"workbench": 8005}
ALL_PORTS = {**SERVICE_PORTS, **WEB_PORTS}

# The built-in secrets: in the source, so anyone can read them. Good for `make run` on the
# embedded default (SQLite) only; elsewhere a service refuses to start with one of them.
DEV_HASH_SECRET = "fengqiao-dev-hash-secret"
DEV_HOTLINE_CALLBACK_SECRET = "whsec_ZmVuZ3FpYW8tZGV2LWhvdGxpbmUtY2FsbGJhY2sta2V5"
DEVELOPMENT = "development"


# Where notify never sends by default: loopback, "this host", link-local (169.254.169.254 is
# the metadata service of most clouds), multicast and broadcast: never a department's receiver.
DEFAULT_DENIED_NETWORKS = (
    "127.0.0.0/8", "0.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "255.255.255.255/32",
    "::1/128", "::/128", "fe80::/10", "ff00::/8")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FQ_", extra="ignore")

    service: str = Field(default="fengqiao", description="Which service this process runs")
    host: str = "127.0.0.1"
    port: int | None = None
    var_dir: Path = Path("var")
    kafka_bootstrap: str = "127.0.0.1:9092"
    database_url: str | None = Field(
        default=None, description="Default: sqlite+aiosqlite:///<var_dir>/<service>.db")
    auth_database_url: str | None = Field(
        default=None, description="Where API keys live; default: database_url, or var/auth.db")
    environment: str = Field(
        default=DEVELOPMENT, pattern=r"^(development|production|staging|test)$",
        description="development, staging, test or production. Outside development (or on "
        "any database but the embedded SQLite) a service refuses to start while a secret "
        "is a built-in default")
    hash_secret: str = Field(default=DEV_HASH_SECRET, min_length=16,
                             description="HMAC key for phone and id number hashes")
    dev_api_key: str | None = Field(default=None, description="An admin key, e.g. from make run")
    open311_public_read: bool = True
    open311_contact: str = Field(
        default="枫溪县社会治理综合服务中心 Fengxi county governance centre",
        description="Open311 discovery: whom integrators contact about the API")
    open311_key_service: str = Field(
        default="向综治中心申请 api_key（范围 intake:write，渠道 open311）。Ask the centre "
        "for an api_key with scope intake:write and channel open311.",
        description="Open311 discovery: how to get an api_key")
    log_level: str = "INFO"
    shutdown_grace_seconds: float = Field(
        default=2.0, ge=0, description="On SIGTERM, seconds of not-ready before closing")
    max_body_bytes: int = Field(default=8 * 1024 * 1024,
                                description="Larger request bodies are refused with 413")
    routing_rules_path: Path | None = Field(
        default=None, description="Router: the rules file (default: the shipped default.yaml)")
    jurisdictions_path: Path | None = Field(
        default=None, description="Router: the jurisdiction tree (default: the sample county)")
    # Kafka consumer and outbox tuning
    consumer_max_records: int = 500
    consumer_poll_ms: int = 200
    consumer_session_timeout_ms: int = Field(
        default=10000, description="How long a dead consumer holds its partitions")
    consumer_max_message_bytes: int = Field(
        default=1_000_000, ge=1024, description="Larger messages go to <topic>.dlq unread")
    outbox_batch: int = 500
    outbox_poll_seconds: float = 0.5
    outbox_retention_seconds: float = Field(
        default=900.0, ge=0, description="How long published outbox rows are kept, to publish "
        "them again if the broker loses its data (the embedded Tansu keeps it in memory only); "
        "0 deletes them at once, enough with a durable Kafka")
    startup_database_wait_seconds: float = Field(
        default=60.0, ge=0, description="How long a starting service waits for an unreachable "
        "database (one restarting) before it gives up and exits")
    processed_retention_days: float = Field(
        default=30.0, ge=0, description="How long a consumer remembers the events it handled "
        "(their keys make a redelivery harmless). Must exceed the longest a message can come "
        "again: the broker's retention (Kafka: 7 days by default) and "
        "FQ_OUTBOX_RETENTION_SECONDS. 0 keeps them forever")
    consumer_group_lag_interval_seconds: float = Field(
        default=10.0, gt=0, description="How often each service reads every consumer group's "
        "committed offsets from the broker (fq_consumer_group_lag_messages)")
    # Liveness (kit.liveness) and make run's supervisor (kit.platform)
    liveness_bound_seconds: float = Field(
        default=120.0, gt=0, description="/healthz fails when a consumer loop, the outbox relay "
        "or a leader job has made no progress (idle counts) for this long")
    supervisor_health_failure_seconds: float = Field(
        default=30.0, gt=0, description="make run restarts a service whose /healthz has failed "
        "(or not answered) for this long")
    supervisor_start_grace_seconds: float = Field(
        default=90.0, ge=0, description="make run does not check a service's health for this "
        "long after starting it (migrations, waiting for the database)")
    supervisor_backoff_reset_seconds: float = Field(
        default=300.0, gt=0, description="make run forgets a service's earlier restarts (and "
        "their growing delay) once it has been healthy for this long")
    # Webhook deliveries (notify)
    delivery_timeout_seconds: float = 5.0
    # 16 attempts with a 2 s base doubling to a 1 h cap: retries span about 3 to 5 hours.
    delivery_max_attempts: int = 16
    delivery_backoff_base_seconds: float = 2.0
    delivery_backoff_max_seconds: float = 3600.0
    delivery_concurrency: int = Field(
        default=50, ge=1, description="Deliveries in flight at once, in each notify process")
    delivery_max_in_flight_per_receiver: int = Field(
        default=8, ge=1, description="In flight to one destination (a subscription, one hotline "
        "platform's callback URL or registered endpoint, the SMS gateway), so one slow "
        "receiver cannot take every slot")
    delivery_sender_shares: int = Field(
        default=16, ge=1, le=4096, description="Destinations (subscriptions, hotline "
        "platforms, the SMS gateway) are hashed into this many shares, spread over the "
        "running notify processes (a fair part each, leased on PostgreSQL advisory locks); a "
        "process sends only for its shares, and takes over those of a process that stops "
        "within about a second. Keep it at least the number of notify processes, and the same "
        "in all of them; 1 makes one process send for all, the others standing by. On SQLite "
        "one process sends for all")
    webhook_denied_networks: list[str] = Field(
        default_factory=lambda: list(DEFAULT_DENIED_NETWORKS),
        description="Networks notify never sends to (webhooks, hotline callbacks), as a JSON "
        "list of CIDRs: by default loopback, link-local (cloud metadata), multicast. [] allows "
        "all, e.g. for receivers on the same machine in development")
    hotline_callback_secret: str = Field(
        default=DEV_HOTLINE_CALLBACK_SECRET,
        description="Standard Webhooks secret signing hotline result feedback (办结反馈) to a "
        "callback URL no entry of FQ_HOTLINE_CALLBACK_SECRETS names")
    hotline_callback_secrets: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Per hotline integration: its callback origin (scheme://host[:port]) to "
        "its signing secrets, as JSON. Every secret listed signs each callback, so during a "
        "rotation list the new one and the old one until the hotline has the new one")
    hotline_disclose_handler: bool = Field(
        default=True, description="Whether callbacks to a 12345 work order name the staff "
        "member who took each step (承办人); false: the department only")
    hotline_department_contacts: dict[str, str] = Field(
        default_factory=dict, description="Per department code: the public contact a 12345 "
        "callback gives as the handling department's (承办单位联系电话), as JSON, e.g. "
        '{"judicial_office": "0575-87001234"}; a department not listed: none')
    intake_url: str = Field(default="http://127.0.0.1:8001",
                            description="Intake's base URL: notify asks it for contact phones")
    contact_directory_api_key: str | None = Field(
        default=None, description="Key with scope personal_data:read for intake's contact "
        "directory; default: dev_api_key")
    sms_enabled: bool = True
    sms_channels: list[str] = Field(
        default_factory=lambda: ["walk_in", "open311", "petition"],
        description="Channels whose reporting citizens notify texts (on receipt and on "
        "closure), as a JSON list. Not hotline_12345 by default: a 12345 platform texts its "
        "callers itself, and two messages about one call confuse people; add it where the "
        "hotline asks the centre to text. Only citizen channels (hotline_12345, walk_in, "
        "open311, petition): grid, police and court reports come from an official")
    sms_gateway_url: str | None = Field(
        default=None, description="HTTP SMS gateway; unset: messages go to <var_dir>/sms.log")
    sms_gateway_token: str | None = Field(default=None, description="Bearer token for it")
    sms_template_received: str = Field(
        default="【枫桥】您反映的事项已受理，案件编号{case_id}，请留意办理进展。",
        description="SMS on receipt; placeholders {case_id}, {external_id}")
    sms_template_closed: str = Field(
        default="【枫桥】您反映的事项（案件编号{case_id}）已办结：{result}。",
        description="SMS on closure; placeholders {case_id}, {external_id}, {result}")
    # Mediation time limits and supervision (督办)
    acceptance_limit_seconds: float | None = Field(
        default=None, gt=0, description="Replace the routing decision's acceptance limit: "
        "accept_by = start + this many seconds (drills, tests)")
    resolution_limit_seconds: float | None = Field(
        default=None, gt=0, description="Replace the routing decision's resolution limit: "
        "resolve_by = start + this many seconds (drills, tests)")
    supervision_interval_seconds: float = Field(
        default=5.0, gt=0, description="How often the leader looks for due supervision")
    supervision_batch: int = Field(default=500, ge=1, description="Cases per supervision step")
    hotline_chaser_answer_hours: float = Field(
        default=24.0, gt=0, description="A 12345 chaser (催办) with no supervision notice open "
        "opens one at level urge (催办): the lead department answers (反馈) within this many "
        "hours; a chaser raising an open notice gives at least as long")
    case_gauges_interval_seconds: float = Field(
        default=15.0, gt=0, description="How often the leader recounts open and overdue cases")
    # Personal data (docs/privacy.md)
    personal_data_retention_days: float = Field(
        default=1095.0, gt=0, description="How long a case's personal data is kept after it is "
        "archived; then mediation's leader erases it everywhere (the case's facts stay). "
        "Default 3 years: the general limitation period of the Civil Code (art. 188), during "
        "which the parties may still bring the dispute to court; set it from the centre's "
        "archive rules")
    personal_data_check_seconds: float = Field(
        default=3600.0, gt=0, description="How often mediation's leader looks for archived "
        "cases past the retention")
    personal_data_batch: int = Field(default=200, ge=1,
                                     description="Cases erased per transaction")
    # Rate limits per API key on intake's POST routes (admin keys are not limited)
    rate_limit_per_second: float = Field(
        default=50.0, ge=0, description="Requests per second a key may keep up; 0: no limit")
    rate_limit_burst: int = Field(
        default=200, ge=1, description="Requests a key may send at once before the rate applies")

    # The workbench (综治中心工作台, docs/workbench.md)
    mediation_url: str = Field(default="http://127.0.0.1:8003",
                               description="Mediation's base URL: the workbench reads and "
                               "moves cases there")
    workbench_secret: str = Field(
        default="fengqiao-dev-workbench-secret",
        description="Workbench: derives each staff account's API key (HMAC); keep it secret "
        "and stable, changing it disables every account's key until its password is reset")
    workbench_idle_minutes: float = Field(
        default=30.0, gt=0, description="Workbench: a session unused this long is signed out")
    workbench_secure_cookie: bool | None = Field(
        default=None, description="Workbench: mark the session cookie Secure; default: when "
        "the request came over HTTPS (behind TLS)")
    workbench_login_attempts: int = Field(
        default=5, ge=1, description="Workbench: failed sign-ins per user (and 4x this per "
        "address) within 15 minutes before sign-in is refused for a while")
    workbench_refresh_seconds: float = Field(
        default=20.0, gt=0, description="Workbench: how often the 待办 list refreshes itself")

    @field_validator("webhook_denied_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            ip_network(network, strict=False)  # ValueError names the bad one
        return value

    @field_validator("sms_channels")
    @classmethod
    def _citizen_channels_only(cls, value: list[str]) -> list[str]:
        citizen = ("hotline_12345", "walk_in", "open311", "petition")
        other = [c for c in value if c not in citizen]
        if other:
            raise ValueError(f"FQ_SMS_CHANNELS may name only citizen channels "
                             f"({', '.join(citizen)}), not {', '.join(other)}")
        return sorted(set(value))

    @field_validator("hotline_callback_secrets")
    @classmethod
    def _origins(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for origin, secrets in value.items():
            parts = urlsplit(origin)
            if not parts.scheme or not parts.netloc or parts.path not in ("", "/") \
                    or parts.query or parts.fragment:
                raise ValueError(f"'{origin}' is not an origin such as https://host:port")
            if not 1 <= len(secrets) <= 4:
                raise ValueError(f"{origin}: 1 to 4 secrets (2 during a rotation)")
        return {_origin(origin): secrets for origin, secrets in value.items()}

    def hotline_signing_secrets(self, callback_url: str | None) -> tuple[str, ...]:
        """The secrets that sign a callback to `callback_url`: its integration's own, else
        FQ_HOTLINE_CALLBACK_SECRET."""
        own = self.hotline_callback_secrets.get(_origin(callback_url or ""))
        return tuple(own) if own else (self.hotline_callback_secret,)

    def is_development(self) -> bool:
        """The embedded default: development on SQLite. PostgreSQL means a real deployment,
        whatever FQ_ENVIRONMENT says."""
        url = self.effective_database_url()
        return self.environment == DEVELOPMENT and url.startswith("sqlite")

    def default_secrets(self) -> list[str]:
        """The settings holding a built-in secret, by environment variable name."""
        found = []
        if self.service in ("intake", "fengqiao") and self.hash_secret == DEV_HASH_SECRET:
            found.append("FQ_HASH_SECRET")
        if self.service in ("notify", "fengqiao"):
            if self.hotline_callback_secret == DEV_HOTLINE_CALLBACK_SECRET:
                found.append("FQ_HOTLINE_CALLBACK_SECRET")
            if any(DEV_HOTLINE_CALLBACK_SECRET in secrets
                   for secrets in self.hotline_callback_secrets.values()):
                found.append("FQ_HOTLINE_CALLBACK_SECRETS")
        return found

    def check_secrets(self) -> None:
        """Refuse to start outside development while a secret is a built-in default."""
        if self.is_development():
            return
        defaults = self.default_secrets()
        if defaults:
            raise ValueError(
                f"refusing to start {self.service} (environment {self.environment}, database "
                f"{self.effective_database_url().split(':', 1)[0]}): "
                + ", ".join(defaults) + " still hold the built-in development secret, which "
                "anyone can read in the source. Make new ones as docs/deploy.md says "
                "(Secrets) and set them in the environment.")

    def effective_port(self) -> int:
        return self.port or ALL_PORTS.get(self.service, 8000)

    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.var_dir / (self.service + '.db')}"

    def effective_auth_database_url(self) -> str:
        if self.auth_database_url:
            return self.auth_database_url
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.var_dir / 'auth.db'}"


def _origin(url: str) -> str:
    """scheme://host[:port] of a URL, lower case, default ports left out."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return url.strip().lower()
    if not parts.scheme or not parts.hostname:
        return url.strip().lower()
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    netloc = parts.hostname.lower() + (f":{port}" if port and port != default else "")
    return f"{parts.scheme.lower()}://{netloc}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
