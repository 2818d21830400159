"""The one settings object of a running sidecar, built from the command line and environment."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import platformdirs
from pydantic import ConfigDict, Field

from sidecar.basemodel import Model

APP_NAME = "sidecar"
TOKEN_ENV = "SIDECAR_TOKEN"
SECRET_ENV_PREFIX = "SIDECAR_SECRET_"


def default_data_dir() -> Path:
    """The platform's per-user data directory for the sidecar (platformdirs)."""
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


class Settings(Model):
    """Process-wide settings. Sizes in bytes, durations in seconds."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    data_dir: Path
    #: the bearer token every request must carry
    token: str
    #: True when the shell supplied the token (then it is not echoed in the handshake)
    token_from_env: bool = False
    parent_pid: int | None = None
    #: the process that spawned us, read at start-up (before it could die and we be re-parented)
    spawner_pid: int = Field(default_factory=os.getppid)
    allow_origins: tuple[str, ...] = ()
    log_level: str = "info"
    watch_paths: tuple[Path, ...] = ()
    #: largest accepted request body
    max_body_bytes: int = 1 << 20
    #: interval of SSE heartbeat comments
    heartbeat_s: float = 15.0
    #: bound on graceful shutdown
    shutdown_timeout_s: float = 5.0
    #: how often the parent process is checked
    parent_poll_s: float = 1.0
    env: dict[str, str] = Field(default_factory=dict, repr=False)

    @property
    def db_path(self) -> Path:
        """The SQLite database file."""
        return self.data_dir / "sidecar.db"

    @property
    def lock_path(self) -> Path:
        """The single-instance lock file (never deleted)."""
        return self.data_dir / "sidecar.lock"


def make_token(env: dict[str, str] | None = None) -> tuple[str, bool]:
    """The API token: ``SIDECAR_TOKEN`` from the environment, else 32 random bytes, URL-safe.

    Returns ``(token, from_env)``.
    """
    env = dict(os.environ) if env is None else env
    supplied = env.get(TOKEN_ENV, "").strip()
    if supplied:
        return supplied, True
    return secrets.token_urlsafe(32), False
