"""The server a developer logged in to (`claude-api login URL`): its URL and API key, kept in
the user's config directory, readable by the user only, and read as settings beneath the
environment (CLAUDE_API_URL and CLAUDE_API_KEY win)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson
from platformdirs import user_config_dir
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from claude_api.config import APP_NAME
from claude_api.files import atomic_write, private_directory

logger = logging.getLogger(__name__)

LOGIN_FILE = "login.json"


def login_path() -> Path:
    """Where the login is kept: `login.json` in the user's config directory."""
    return Path(user_config_dir(APP_NAME)) / LOGIN_FILE


def save_login(url: str, key: str | None) -> Path:
    """Keep `url` and `key`, replacing any earlier login at once (atomically, mode 0600)."""
    path = login_path()
    private_directory(path.parent)
    with atomic_write(path) as file:
        file.write(orjson.dumps({"url": url, "api_key": key}).decode())
    return path


def forget_login() -> bool:
    """Remove the login; whether there was one."""
    try:
        login_path().unlink()
    except FileNotFoundError:
        return False
    return True


def read_login() -> dict[str, str]:
    """The kept `url` and `api_key` (those present); empty without a login. A file that
    cannot be read is logged and ignored."""
    path = login_path()
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        logger.warning("ignoring the login in %s: %s", path, error)
        return {}
    if not isinstance(data, dict):
        logger.warning("ignoring the login in %s: not a JSON object", path)
        return {}
    return {name: data[name] for name in ("url", "api_key") if isinstance(data.get(name), str)}


class LoginSettingsSource(PydanticBaseSettingsSource):
    """`url` and `api_key` from the login file, unless a source before it (arguments, the
    environment) names another server: a key is never sent to a server it was not made for."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # __call__ answers for every field at once

    def __call__(self) -> dict[str, Any]:
        login = read_login()
        url = login.get("url")
        if url is None:
            return {}
        given = self.current_state.get("url")
        if given is not None and given.rstrip("/") != url.rstrip("/"):
            return {}
        values: dict[str, Any] = {"url": url}
        if "api_key" in login and self.current_state.get("api_key") is None:
            values["api_key"] = login["api_key"]
        return values


def login_source(settings_cls: type[BaseSettings]) -> LoginSettingsSource:
    return LoginSettingsSource(settings_cls)
