"""One settings class for every service, read from FQ_* environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICE_PORTS = {"intake": 8001, "router": 8002, "mediation": 8003, "notify": 8004}


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
    hash_secret: str = Field(default="fengqiao-dev-hash-secret",
                             description="HMAC key for phone and id number hashes")
    dev_api_key: str | None = Field(default=None, description="An admin key, e.g. from make run")
    log_level: str = "INFO"
    # Kafka consumer and outbox tuning
    consumer_max_records: int = 500
    consumer_poll_ms: int = 200
    consumer_session_timeout_ms: int = Field(
        default=10000, description="How long a dead consumer holds its partitions")
    outbox_batch: int = 500
    outbox_poll_seconds: float = 0.5
    # Webhook deliveries (notify)
    delivery_timeout_seconds: float = 5.0
    delivery_max_attempts: int = 8
    delivery_backoff_base_seconds: float = 2.0
    delivery_backoff_max_seconds: float = 3600.0

    def effective_port(self) -> int:
        return self.port or SERVICE_PORTS.get(self.service, 8000)

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


@lru_cache
def get_settings() -> Settings:
    return Settings()
