"""`claude-api hook install` on hostile and unusual trees, as a real process: a repository that
ships links where the installer writes, private settings files, files it cannot read."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

CLAUDE_API = Path(sys.executable).parent / "claude-api"
VICTIM = b"precious: this file belongs to someone else\n"
COMMANDS = ("--command", "claude-api hook", "--budget-command", "claude-api-hook")
INSTALLED = {"claude-api hook", "claude-api-hook"}  # the import's hook and the budget check


def install(
    *args: str, home: Path, config_dir: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CLAUDE")}
    env["HOME"] = str(home)
    if config_dir is not None:
        env["CLAUDE_CONFIG_DIR"] = str(config_dir)
    return subprocess.run(
        [str(CLAUDE_API), "hook", "install", *COMMANDS, *args],
        capture_output=True,
        text=True,
        env=env,
        umask=0o022,
        timeout=timeout,
        check=False,
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def hook_commands(settings: Path) -> set[str]:
    hooks = json.loads(settings.read_text(encoding="utf-8"))["hooks"]
    return {h["command"] for groups in hooks.values() for g in groups for h in g["hooks"]}


def assert_one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("error: "), line
    for word in words:
        assert word in line, line


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A checked-out repository with a `.claude` directory of its own."""
    root = tmp_path / "repo"
    (root / ".claude").mkdir(parents=True)
    return root


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    path = tmp_path / "victim.txt"
    path.write_bytes(VICTIM)
    return path


def test_a_link_shipped_at_the_temporary_name_is_never_followed(
    project: Path, victim: Path, tmp_path: Path
) -> None:
    planted = project / ".claude" / ".settings.json.tmp"
    planted.symlink_to(victim)
    result = install("--project", str(project), home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert victim.read_bytes() == VICTIM
    assert planted.is_symlink() and planted.readlink() == victim
    assert hook_commands(project / ".claude" / "settings.json") == INSTALLED


def test_links_shipped_at_the_backup_names_are_never_followed(
    project: Path, victim: Path, tmp_path: Path
) -> None:
    settings = project / ".claude" / "settings.json"
    settings.write_text('{"model": "opus"}\n', encoding="utf-8")
    # The backup is named after the second it is made: plant a link for every second to come.
    start = datetime.now(UTC) - timedelta(seconds=2)
    for second in range(120):
        stamp = (start + timedelta(seconds=second)).strftime("%Y%m%dT%H%M%S")
        (settings.parent / f"settings.json.{stamp}.bak").symlink_to(victim)
    result = install("--project", str(project), "--json", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert victim.read_bytes() == VICTIM
    backup = Path(json.loads(result.stdout)["backup"])
    assert not backup.is_symlink()
    assert backup.read_text(encoding="utf-8") == '{"model": "opus"}\n'


@pytest.mark.parametrize("original", [0o600, 0o640, 0o644])
def test_the_settings_file_keeps_its_permissions(
    project: Path, tmp_path: Path, original: int
) -> None:
    settings = project / ".claude" / "settings.json"
    settings.write_text('{"env": {"ANTHROPIC_API_KEY": "sk-ant-secret"}}', encoding="utf-8")
    settings.chmod(original)
    result = install("--project", str(project), "--json", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert mode(settings) == original
    assert mode(Path(json.loads(result.stdout)["backup"])) == original
    assert json.loads(settings.read_text())["env"] == {"ANTHROPIC_API_KEY": "sk-ant-secret"}


def test_a_new_settings_file_is_private(tmp_path: Path) -> None:
    project = tmp_path / "fresh"
    project.mkdir()
    result = install("--project", str(project), home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert mode(project / ".claude" / "settings.json") == 0o600


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ('{"model": "café"}'.encode("latin-1"), ["not UTF-8"]),
        (b"{ not json", ["not valid JSON"]),
        (b"[1, 2]", ["not hold a JSON object"]),
        (b'{"hooks": []}', ["`hooks` is not an object"]),
        (b'{"hooks": {"SessionEnd": {}}}', ["`hooks.SessionEnd` is not a list"]),
        (b"[" * 100_000, ["nested too deeply"]),
    ],
    ids=["latin-1", "not-json", "array", "hooks-list", "event-object", "deep"],
)
def test_a_settings_file_it_cannot_use_is_left_alone_with_one_line(
    project: Path, tmp_path: Path, content: bytes, words: list[str]
) -> None:
    settings = project / ".claude" / "settings.json"
    settings.write_bytes(content)
    before = sorted(path.name for path in settings.parent.iterdir())
    result = install("--project", str(project), home=tmp_path)
    assert_one_line_error(result, str(settings), *words)
    assert settings.read_bytes() == content
    assert sorted(path.name for path in settings.parent.iterdir()) == before


def test_a_fifo_shipped_as_the_settings_file_is_refused(project: Path, tmp_path: Path) -> None:
    settings = project / ".claude" / "settings.json"
    os.mkfifo(settings)
    result = install("--project", str(project), home=tmp_path, timeout=20)
    assert_one_line_error(result, str(settings), "not a regular file")
    assert stat.S_ISFIFO(settings.lstat().st_mode)


def test_a_project_settings_link_is_refused(project: Path, tmp_path: Path) -> None:
    # The link points at the user's own settings: following it would install into them, and
    # replacing it would copy their keys into the repository's file.
    secrets = tmp_path / "home-settings.json"
    secrets.write_text('{"env": {"ANTHROPIC_API_KEY": "sk-ant-secret"}}', encoding="utf-8")
    original = secrets.read_bytes()
    settings = project / ".claude" / "settings.json"
    settings.symlink_to(secrets)
    result = install("--project", str(project), home=tmp_path)
    assert_one_line_error(result, str(settings), "symbolic link")
    assert settings.is_symlink() and settings.readlink() == secrets
    assert secrets.read_bytes() == original
    assert sorted(path.name for path in settings.parent.iterdir()) == ["settings.json"]


def test_a_project_whose_claude_directory_is_a_link_is_refused(
    tmp_path: Path,
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    project = tmp_path / "repo"
    project.mkdir()
    (project / ".claude").symlink_to(elsewhere)
    result = install("--project", str(project), home=tmp_path)
    assert_one_line_error(result, str(project / ".claude"), "symbolic link")
    assert list(elsewhere.iterdir()) == []


def test_the_users_own_linked_settings_are_updated_through_the_link(tmp_path: Path) -> None:
    # A settings.json kept in a dotfiles repository and linked into place stays a link.
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    real = dotfiles / "settings.json"
    real.write_text('{"model": "opus"}', encoding="utf-8")
    real.chmod(0o600)
    config = tmp_path / "config"
    config.mkdir()
    link = config / "settings.json"
    link.symlink_to(real)
    result = install("--user", "--json", home=tmp_path, config_dir=config)
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and link.readlink() == real
    assert hook_commands(real) == INSTALLED
    assert json.loads(real.read_text())["model"] == "opus"
    assert mode(real) == 0o600
    backup = Path(json.loads(result.stdout)["backup"])
    assert backup.parent == dotfiles
    assert backup.read_text(encoding="utf-8") == '{"model": "opus"}'
