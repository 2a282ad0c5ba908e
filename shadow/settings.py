"""Deployment settings from the environment (prefix `SWITCHOVER_`)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from shadow.config import ConfigError, SwitchoverConfig, load_config, parse_config
from storage.db import DEFAULT_DATABASE_URL

_BUNDLED_CONFIG = Path(__file__).with_name("default_config.yaml")


class Settings(BaseSettings):
    """Where the service listens, where its database and broker are, and the hot path's limits."""

    model_config = SettingsConfigDict(env_prefix="SWITCHOVER_", extra="ignore")

    config: Path | None = Field(None, description="switchover.yaml; ./switchover.yaml if present")
    database_url: SecretStr = Field(
        SecretStr(DEFAULT_DATABASE_URL), description="SQLAlchemy URL of the pairs and verdicts"
    )
    broker_url: str | None = Field(None, description="Redis or RabbitMQ URL; unset = embedded")
    redis_url: str | None = Field(
        None, description="Redis for the global max_in_flight limiter; defaults to a redis broker"
    )
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    shadow_buffer_size: int = Field(10_000, ge=1, description="jobs waiting for the broker")
    broker_publish_timeout_s: float = Field(2.0, gt=0)
    broker_visibility_timeout_s: int = Field(
        900, ge=1, description="redis: how long a job taken by a dead worker waits to come back"
    )
    queue: str = Field("switchover.shadow", description="Celery queue of the shadow jobs")
    scoring_queue: str | None = Field(
        None, description="Celery queue of the scoring jobs; default: the queue + `.scoring`"
    )
    worker_concurrency: int = Field(16, ge=1)
    worker_switch_interval_ms: float = Field(
        0.5, gt=0, description="how long a worker's thread holds the GIL while another waits"
    )
    embedded_worker_concurrency: int = Field(8, ge=1)
    evaluate_every_s: float = Field(60.0, gt=0, description="how often verdicts are re-evaluated")
    rollout_sync_s: float = Field(
        1.0, gt=0, description="how often a proxy reads live percentages and stores its counts"
    )
    purge_every_s: float = Field(
        3600.0, gt=0, description="how often pairs past their retention period are purged"
    )

    @property
    def embedded(self) -> bool:
        """True when no broker is configured: broker and worker run inside the server."""
        return self.broker_url is None

    @property
    def scoring_queue_name(self) -> str:
        """The queue scoring jobs go to, apart from the shadow jobs."""
        return self.scoring_queue or f"{self.queue}.scoring"

    @property
    def limiter_redis_url(self) -> str | None:
        """The Redis used to share `max_in_flight` between worker processes, if any."""
        if self.redis_url:
            return self.redis_url
        if self.broker_url and self.broker_url.startswith(("redis://", "rediss://")):
            return self.broker_url
        return None

    def config_path(self) -> Path | None:
        """The configuration file in use; None means the bundled default."""
        if self.config is not None:
            return self.config
        local = Path("switchover.yaml")
        return local if local.exists() else None

    def config_dir(self) -> Path | None:
        """Where relative paths in the configuration (criteria files) start from."""
        path = self.config_path()
        return path.resolve().parent if path is not None else None

    def load_config(self) -> SwitchoverConfig:
        """The validated configuration (the bundled default when no file is configured)."""
        path = self.config_path()
        if path is None:
            return parse_config(_BUNDLED_CONFIG.read_text(encoding="utf-8"), str(_BUNDLED_CONFIG))
        if not path.exists():
            raise ConfigError(f"{path}: configuration file not found (SWITCHOVER_CONFIG)")
        return load_config(path)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
