"""Settings of the service, read from `CLAUDE_API_*` environment variables and flags."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal, NamedTuple, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from platformdirs import user_data_dir
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

APP_NAME = "claude-api"
_ORIGIN = re.compile(r"https?://[^/\s?#*@]+/?", re.IGNORECASE)  # scheme://host[:port]

# A list read from the environment as comma-separated words (`a, b`), not as JSON.
Words = Annotated[list[str], NoDecode]
_PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_RATE = re.compile(r"\s*(\d+)\s*/\s*(second|minute|hour|day)s?\s*", re.IGNORECASE)
_NO_RATES = ("", "off", "none", "0")


class Rate(NamedTuple):
    """At most `count` requests per `seconds`, as a token bucket: a burst of `count`, refilled
    at `count / seconds` a second."""

    count: int
    seconds: int

    def __str__(self) -> str:
        period = next(name for name, length in _PERIODS.items() if length == self.seconds)
        return f"{self.count}/{period}"


def parse_rates(text: str) -> tuple[Rate, ...]:
    """Rates written `300/second;6000/minute` (`;` or `,` between them); none for `off`.

    Raises ValueError naming the part that is not a rate."""
    if text.strip().lower() in _NO_RATES:
        return ()
    rates = []
    for part in re.split(r"[;,]", text):
        found = _RATE.fullmatch(part)
        if found is None or int(found[1]) < 1:
            raise ValueError(
                f"CLAUDE_API_RATE_LIMIT: {part.strip()!r} is not a rate such as 300/second or "
                "6000/minute (a count of at least 1 per second, minute, hour or day); `off` "
                "turns rate limits off"
            )
        rates.append(Rate(int(found[1]), _PERIODS[found[2].lower()]))
    return tuple(rates)


def default_database_url() -> str:
    """A SQLite file in the user's data directory (created on first use, not here)."""
    return f"sqlite:///{Path(user_data_dir(APP_NAME)) / 'analytics.db'}"


class Settings(BaseSettings):
    """Every setting in one place; each is also the environment variable `CLAUDE_API_<NAME>`."""

    # validate_by_name: `api_key` is read from CLAUDE_API_KEY (an alias), and set by name in code.
    model_config = SettingsConfigDict(
        env_prefix="CLAUDE_API_", extra="ignore", validate_by_name=True
    )

    database_url: str = Field(
        default_factory=default_database_url,
        description="SQLAlchemy URL: sqlite:///path.db (default) or postgresql+psycopg://...",
    )
    claude_bin: str = Field(default="claude", description="The Claude Code executable.")
    tracking_queue_size: int = Field(
        default=100_000,
        ge=1,
        description="Events the background tracker holds before it drops new ones.",
    )
    url: str | None = Field(
        default=None,
        description="The claude-api server the CLI asks, e.g. http://127.0.0.1:8000; unset, the "
        "CLI answers from the database itself. Set (or after `claude-api login`), the hook, the "
        "import and `claude-api run` send their events to it (team mode).",
    )
    api_key: SecretStr | None = Field(
        default=None,
        validation_alias="CLAUDE_API_KEY",  # not CLAUDE_API_API_KEY, as the prefix would make it
        description="Sent by the CLI as `Authorization: Bearer <key>` to the server.",
    )
    spool_max_bytes: int = Field(
        default=256 * 2**20,
        ge=4096,
        description="Largest size of the spool where team mode keeps the events the server "
        "cannot take yet; beyond it new events are refused (counted and logged).",
    )
    auth: Literal["auto", "required", "off"] = Field(
        default="auto",
        description="API keys required: `auto` when the server binds to anything but loopback, "
        "`required` always, `off` never (refused for a non-loopback bind unless "
        "CLAUDE_API_ALLOW_PUBLIC_WITHOUT_AUTH is set).",
    )
    allow_public_without_auth: bool = Field(
        default=False,
        description="Let `auth=off` serve on a non-loopback address, e.g. behind a gateway that "
        "authenticates itself.",
    )
    auth_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        le=10,
        description="How long a verified API key is trusted without asking the database: a "
        "revoked key stops working within this time.",
    )
    allowed_origins: Words = Field(
        default_factory=list,
        description="Origins of web pages on other sites that may call the server (comma-"
        "separated, e.g. https://dash.example.com); their preflights are answered (CORS). "
        "Pages of the server's own origin may always call it; any other Origin gets a 403.",
    )
    allowed_hosts: Words = Field(
        default_factory=list,
        description="Host names (any port), besides localhost, 127.0.0.1 and [::1], that a "
        "server needing no API key answers (421 for any other Host: DNS rebinding); `*` for "
        "any. Not checked while API keys are required.",
    )
    rate_limit: Annotated[tuple[Rate, ...], NoDecode] = Field(
        default=(Rate(300, 1), Rate(6000, 60)),
        description="Requests each API key (without keys: each client address) may send, e.g. "
        "`300/second;6000/minute` (the default: bursts of 300, then 100 a second); beyond, 429 "
        "with Retry-After. `off` for no limit.",
    )
    query_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A request's reads are stopped by the database after this long (per "
        "request; a GraphQL request's fields share it).",
    )
    max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="Largest request body (413 beyond it)."
    )
    max_events_body_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="Largest body of POST /v1/events, which takes batches of 10,000 events.",
    )
    retention_days: int = Field(
        default=90,
        ge=0,
        description="Days of raw invocation rows to keep (0: forever); older rows are purged "
        "daily by the server and by `claude-api analytics purge`. Reports, history and "
        "leaderboards still answer from the rollups.",
    )
    rollup_retention_days: int = Field(
        default=0,
        ge=0,
        description="Days of rollups (hourly, daily and monthly aggregates) to keep (0: forever, "
        "the default); at least CLAUDE_API_RETENTION_DAYS when both are set.",
    )
    time_zones: Words = Field(
        default_factory=list,
        description="The time zones the dashboard and reports are read in (IANA names, comma-"
        "separated; default: this machine's). The server keeps their days as daily rollups, "
        "so a history by local day reads one row a day rather than 24 hourly ones.",
    )

    dashboard_warm_up: bool = Field(
        default=True,
        description="Load the dashboard's first views (the overview of each period, the pages "
        "of the busiest agent and skill, the task list) in the background, in each time zone of "
        "CLAUDE_API_TIME_ZONES, when the server starts, after each local midnight and after "
        "older data changes: their first load in a browser then finds them ready.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The server and key of `claude-api login`, beneath arguments and the environment.
        from claude_api.login import LoginSettingsSource

        login = LoginSettingsSource(settings_cls)
        return init_settings, env_settings, dotenv_settings, file_secret_settings, login

    @field_validator("allowed_origins", "allowed_hosts", "time_zones", mode="before")
    @classmethod
    def _split_words(cls, value: object) -> object:
        if isinstance(value, str):
            return [word.strip() for word in value.split(",") if word.strip()]
        return value

    @field_validator("rate_limit", mode="before")
    @classmethod
    def _parse_rates(cls, value: object) -> object:
        return parse_rates(value) if isinstance(value, str) else value

    @field_validator("allowed_origins")
    @classmethod
    def _origins_are_origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            if not _ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"CLAUDE_API_ALLOWED_ORIGINS: {origin!r} is not an origin such as "
                    "https://dash.example.com (a scheme and a host, no path; no wildcard)"
                )
        return origins

    @field_validator("time_zones")
    @classmethod
    def _zones_are_zones(cls, zones: list[str]) -> list[str]:
        for zone in zones:
            try:
                ZoneInfo(zone)
            except (ValueError, ZoneInfoNotFoundError):
                raise ValueError(
                    f"CLAUDE_API_TIME_ZONES: {zone!r} is not a time zone such as "
                    "America/New_York or Europe/Paris (an IANA name)"
                ) from None
        return zones

    @model_validator(mode="after")
    def _rollups_outlive_raw_rows(self) -> Self:
        # Reports answer from the rollups: purging them before the raw rows would hide periods
        # whose invocations are still stored.
        raw, rollups = self.retention_days or None, self.rollup_retention_days or None
        if rollups is not None and (raw is None or rollups < raw):
            keeps = "forever" if raw is None else f"{raw} days"
            raise ValueError(
                f"CLAUDE_API_ROLLUP_RETENTION_DAYS ({rollups}) must be 0 (keep forever) or at "
                f"least CLAUDE_API_RETENTION_DAYS (raw rows are kept {keeps}): reports answer "
                "from the rollups"
            )
        return self


def setting_variable(setting: str) -> str:
    """The environment variable of a `Settings` field: `CLAUDE_API_TIME_ZONES` of `time_zones`."""
    return f"{Settings.model_config['env_prefix']}{setting.upper()}"


def invalid_settings(error: ValidationError) -> str:
    """What is wrong with the `CLAUDE_API_*` settings, one sentence per problem, each naming
    its variable."""
    reasons = []
    for problem in error.errors():
        message = str(problem["msg"]).removeprefix("Value error, ")
        variable = setting_variable(str(problem["loc"][0])) if problem["loc"] else ""
        reasons.append(
            message if not variable or message.startswith(variable) else f"{variable}: {message}"
        )
    return "; ".join(reasons)
