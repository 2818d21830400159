"""An in-memory keyring backend for tests (a real ``keyring`` backend class, nothing mocked).

In-process: ``keyring.set_keyring(MemoryKeyring())``. In a spawned sidecar:
``PYTHON_KEYRING_BACKEND=tests.fakes.memory_keyring.MemoryKeyring`` with the repo on PYTHONPATH.
"""

from __future__ import annotations

from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError


class MemoryKeyring(KeyringBackend):
    """Stores passwords in a dict for the life of the process."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.passwords: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.passwords.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.passwords[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if (service, username) not in self.passwords:
            raise PasswordDeleteError(username)
        del self.passwords[(service, username)]
