"""The one Settings object, read from the environment or `.env`, validated at start-up."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, create_model, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from jobs import task_types

# Each task type's timeout is a setting (TIMEOUT_<TYPE>), named and defaulted by the registry.
_TaskTimeouts = create_model(
    "_TaskTimeouts", __base__=BaseSettings,
    **{t.timeout_setting: (float, Field(t.default_timeout, gt=0)) for t in task_types.TYPES.values()},
)


class SettingsError(Exception):
    """A setting has a value the product cannot run with; the message says which and why."""


class Settings(_TaskTimeouts):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    redis_url: str | None = None
    data_dir: Path = Path("data")
    database_url: str | None = None
    worker_concurrency: int = Field(4, ge=1, le=256)
    # How far `huey_worker.py` lowers its priority (a nice value): on a host it shares with
    # a web process, requests get a core before background tasks (jobs/priority.py).
    worker_nice: int = Field(10, ge=0, le=19)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    async_threshold: int = Field(10, ge=1)
    max_posts_per_request: int = Field(200, ge=1)
    generation_rate_limit: int = Field(30, ge=1)  # generation requests per user in any 60 s
    secret_key: SecretStr | None = None  # signs session cookies; share it across web machines
    # Sign-in attempts allowed in any `login_window` seconds (a moving window), for one account
    # and from one address (over all accounts); successful and refused ones do not count.
    login_attempts_per_account: int = Field(5, ge=1)
    login_attempts_per_address: int = Field(30, ge=1)
    login_window: int = Field(300, ge=1)
    # How many proxies in front of the web server to believe about the client's address and
    # scheme (X-Forwarded-For / -Proto / -Host); 0: none, the connection is the client.
    trusted_proxies: int = Field(0, ge=0, le=10)
    metrics_token: SecretStr | None = None  # lets Prometheus read /metrics as a bearer token

    # Finished tasks older than this many days are pruned daily (0: keep everything). The
    # weekly report reads the task records of its week, hence at least 8.
    task_retention_days: int = Field(90, ge=0)

    # Liveness: workers write a heartbeat this often; one silent for `worker_lost_after`
    # is declared dead and its tasks are re-queued or failed.
    heartbeat_interval: float = Field(2.0, gt=0)
    worker_lost_after: float = Field(10.0, gt=0)
    task_max_attempts: int = Field(3, ge=1, le=20)
    shutdown_grace: float = Field(10.0, ge=0)
    # Alerts: posted (Slack-compatible JSON) to this URL; checked every interval.
    alert_webhook_url: str | None = None
    # Completion webhooks (`callback_url`) may be delivered to loopback, private and
    # link-local addresses: off by default, or any user could make the server post to, and
    # read the answers of, services only reachable from inside (jobs/webhooks.py).
    webhook_private_addresses: bool = False
    alert_backlog_seconds: float = Field(300, gt=0)
    alert_check_interval: float = Field(5.0, gt=0)
    # How often a worker re-reads whether the queue is paused (0: before every claim).
    pause_check_interval: float = Field(1.0, ge=0, le=60)

    llm_provider: Literal["offline", "openai", "anthropic"] = "offline"
    llm_base_url: str | None = None
    llm_api_key: SecretStr | None = None
    llm_model: str | None = None
    llm_timeout: float = Field(30.0, gt=0)
    # Model calls: retries per kind of transient failure (backoff with jitter between them).
    llm_retries_rate_limited: int = Field(4, ge=0, le=20)
    llm_retries_server: int = Field(2, ge=0, le=20)
    llm_retries_timeout: int = Field(1, ge=0, le=20)
    llm_retries_connection: int = Field(2, ge=0, le=20)
    # Small batches answered at once run on their own bounded pool, with a deadline; past
    # its capacity a request is queued as a task instead.
    sync_generation_workers: int = Field(4, ge=1, le=64)
    sync_generation_timeout: float = Field(20.0, gt=0)
    mastodon_limit: int = Field(500, ge=100, le=100_000)

    # Tests only: named steps where a process kills itself (see jobs/faults.py).
    fault_injection: str | None = None

    events_max: int = Field(10_000, ge=100)
    sse_keepalive: float = Field(15.0, gt=0)
    # Open event streams: past these, more are refused (429 per user, 503 for the process).
    stream_limit_per_user: int = Field(32, ge=1)
    stream_limit: int = Field(10_000, ge=1)

    @field_validator("redis_url", "database_url", "llm_base_url", "llm_model", "llm_api_key",
                     "secret_key", "alert_webhook_url", "metrics_token",
                     mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("alert_webhook_url")
    @classmethod
    def _http_only(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("task_retention_days")
    @classmethod
    def _keeps_a_week(cls, value: int) -> int:
        if 0 < value < 8:
            raise ValueError("must be 0 (keep everything) or at least 8 (the weekly report reads a week)")
        return value

    @model_validator(mode="after")
    def _liveness_window(self) -> "Settings":
        if self.worker_lost_after <= 2 * self.heartbeat_interval:
            raise ValueError(
                "WORKER_LOST_AFTER must be more than twice HEARTBEAT_INTERVAL, "
                "or live workers would be declared dead"
            )
        return self

    @property
    def sql_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'app.db').resolve()}"

    @property
    def queue_file(self) -> Path:
        return (self.data_dir / "queue.db").resolve()

    def writer_options(self) -> dict:
        key = self.llm_api_key.get_secret_value() if self.llm_api_key else None
        retries = {kind: getattr(self, f"llm_retries_{kind}")
                   for kind in ("rate_limited", "server", "timeout", "connection")}
        return {"provider": self.llm_provider, "base_url": self.llm_base_url,
                "api_key": key, "model": self.llm_model, "timeout": self.llm_timeout,
                "retries": retries}

    def timeout_for(self, task_type: str) -> float:
        return task_types.TYPES[task_type].timeout(self)


def load_settings(**overrides: object) -> Settings:
    """Read settings; turn pydantic's report into one message naming each bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = "_".join(str(part) for part in err["loc"]).upper() or "settings"
            problems.append(f"{name}: {err['msg']} (got {err.get('input')!r})")
        raise SettingsError("invalid settings: " + "; ".join(problems)) from None
