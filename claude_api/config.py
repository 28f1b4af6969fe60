"""Settings of the service, read from `CLAUDE_API_*` environment variables and flags."""

from __future__ import annotations

from pathlib import Path

from platformdirs import user_data_dir
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

APP_NAME = "claude-api"


def default_database_url() -> str:
    """A SQLite file in the user's data directory (created on first use, not here)."""
    return f"sqlite:///{Path(user_data_dir(APP_NAME)) / 'analytics.db'}"


class Settings(BaseSettings):
    """Every setting in one place; each is also the environment variable `CLAUDE_API_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="CLAUDE_API_", extra="ignore")

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
