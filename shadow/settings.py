"""Deployment settings from the environment (prefix `SWITCHOVER_`)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from evaluators.retry import DEFAULT_MAX_COUNTDOWN_S
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
    body_read_timeout_s: float = Field(
        30.0, gt=0, description="how long a client may take to send its request body"
    )
    max_header_bytes: int = Field(
        64 * 1024, ge=1024, description="request headers larger in total are refused (431)"
    )
    shadow_buffer_size: int = Field(
        10_000,
        ge=1,
        description="jobs waiting for the broker; embedded: also the local queue's bound",
    )
    broker_publish_timeout_s: float = Field(2.0, gt=0)
    broker_visibility_timeout_s: int = Field(
        900, ge=1, description="redis: how long a job taken by a dead worker waits to come back"
    )
    retry_max_countdown_s: int = Field(
        DEFAULT_MAX_COUNTDOWN_S, ge=1, description="longest wait before a task tries again"
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
    embedded_worker_processes: int = Field(
        1, ge=1, description="embedded: worker processes `serve` supervises"
    )
    embedded_worker_nice: int = Field(
        10, ge=0, le=19, description="embedded: the workers' CPU priority below the proxies'"
    )
    embedded_worker_idle: bool = Field(
        True,
        description="embedded: the workers run under Linux SCHED_IDLE (a proxy that wakes "
        "preempts them at once)",
    )
    queue_path: Path | None = Field(
        None, description="embedded: the durable local queue's file; default beside the database"
    )
    evaluate_every_s: float = Field(60.0, gt=0, description="how often verdicts are re-evaluated")
    rollout_sync_s: float = Field(
        1.0, gt=0, description="how often a proxy reads live percentages and stores its counts"
    )
    turn_ttl_s: float = Field(
        3600.0, gt=0, description="how long a Responses turn is kept for the turns after it"
    )
    purge_every_s: float = Field(
        3600.0, gt=0, description="how often pairs past their retention period are purged"
    )
    sweep_every_s: float = Field(
        60.0, gt=0, description="how often pairs whose scoring could not be queued are queued"
    )

    @model_validator(mode="after")
    def _retries_come_back_before_redelivery(self) -> Settings:
        if self.broker_visibility_timeout_s <= self.retry_max_countdown_s:
            raise ValueError(
                f"SWITCHOVER_BROKER_VISIBILITY_TIMEOUT_S={self.broker_visibility_timeout_s} must "
                "be longer than the longest retry countdown (SWITCHOVER_RETRY_MAX_COUNTDOWN_S="
                f"{self.retry_max_countdown_s}): the broker would hand each waiting retry to "
                "another worker and the copies would multiply"
            )
        return self

    @property
    def embedded(self) -> bool:
        """True when no broker is configured: broker and worker run inside the server."""
        return self.broker_url is None

    @property
    def local_queue_path(self) -> Path:
        """Embedded mode's queue file: `queue_path`, else beside a SQLite database, else here."""
        if self.queue_path is not None:
            return self.queue_path.resolve()
        url = make_url(self.database_url.get_secret_value())
        if url.drivername.startswith("sqlite") and url.database not in (None, "", ":memory:"):
            database = Path(str(url.database))
            return database.resolve().with_name(f"{database.stem}-queue.db")
        return Path("switchover-queue.db").resolve()

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


class SettingsError(ValueError):
    """A `SWITCHOVER_` variable holds a value its setting does not accept."""


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        if not error["loc"]:  # a rule between settings: its message names them
            problems.append(error["msg"].removeprefix("Value error, "))
            continue
        field = str(error["loc"][0])
        secret = Settings.model_fields.get(field) is not None and (
            Settings.model_fields[field].annotation is SecretStr
        )
        value = "***" if secret else repr(error.get("input"))
        rule = error["msg"].replace("Input should be", "it must be")
        problems.append(f"SWITCHOVER_{field.upper()}={value} is not accepted: {rule}")
    return "; ".join(problems)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once; SettingsError names the variable, value and rule."""
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None
