"""Secrets (API keys): the OS keyring, with ``SIDECAR_SECRET_<NAME>`` from the shell winning.

Secrets are write-only over the API. When no secure keyring backend is usable (headless Linux
has none) storing fails with a clear error and ``/v1/ready`` reports ``secrets: degraded``;
there is deliberately no plaintext-file fallback.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from sidecar.errors import Unavailable, ValidationFailed
from sidecar.logs import redact
from sidecar.settings import SECRET_ENV_PREFIX

SERVICE = "sidecar"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Backends that store secrets unencrypted or not at all.
_INSECURE_MODULE_PREFIXES = ("keyring.backends.fail", "keyring.backends.null", "keyrings.alt")


def env_name(name: str) -> str:
    """The environment variable that overrides secret ``name``: ``SIDECAR_SECRET_OPENAI_KEY``."""
    return SECRET_ENV_PREFIX + re.sub(r"[^A-Z0-9]", "_", name.upper())


def check_name(name: str) -> str:
    """Validate a secret name. Raises ValidationFailed."""
    if not NAME_RE.match(name):
        raise ValidationFailed.field("name", "1-64 characters: letters, digits, '_', '.', '-'")
    return name


def _backend_problem(kr: Any) -> str | None:
    backends = getattr(kr, "backends", None)
    if backends is not None:  # ChainerBackend: usable if any member is
        if not backends:
            return "no keyring backend is available (on Linux: install and unlock a Secret Service such as GNOME Keyring or KWallet)"
        problems = [_backend_problem(b) for b in backends]
        return None if any(p is None for p in problems) else problems[0]
    module = type(kr).__module__
    if module.startswith("keyring.backends.fail"):
        return "no secure keyring backend is available (on Linux: install and unlock a Secret Service such as GNOME Keyring or KWallet)"
    if module.startswith(_INSECURE_MODULE_PREFIXES):
        return f"keyring backend {type(kr).__name__} is not a secure store; refusing to keep secrets in it"
    try:
        if kr.priority <= 0:  # type: ignore[operator]
            return f"keyring backend {type(kr).__name__} is not usable here"
    except Exception as exc:
        return f"keyring backend {type(kr).__name__} is not usable: {exc}"
    return None


class SecretStore:
    """Reads and writes named secrets. Blocking keyring calls run in a worker thread."""

    def __init__(self, env: dict[str, str]) -> None:
        self._env = env

    def status(self) -> tuple[bool, str]:
        """``(usable, detail)`` of the keyring backend. Blocking (call it in a worker thread)."""
        import keyring  # loading backends is slow; never before the handshake

        kr = keyring.get_keyring()
        problem = _backend_problem(kr)
        if problem:
            return False, problem
        return True, f"keyring backend {type(kr).__name__}"

    async def get(self, name: str) -> str | None:
        """The secret's value: the environment override first, then the keyring; None if unset."""
        check_name(name)
        value = self._env.get(env_name(name))
        if not value:
            value = await asyncio.to_thread(self._read, name)
        redact(value)
        return value

    async def set(self, name: str, value: str) -> None:
        """Store a secret in the OS keyring.

        Raises:
            ValidationFailed: bad name or empty value.
            Unavailable: no secure keyring backend (code ``secrets_unavailable``).
        """
        check_name(name)
        if not value:
            raise ValidationFailed.field("value", "must not be empty")
        redact(value)
        await asyncio.to_thread(self._write, name, value)

    async def delete(self, name: str) -> bool:
        """Remove a secret from the keyring; False if it was not there.

        Raises:
            Unavailable: no secure keyring backend (code ``secrets_unavailable``).
        """
        check_name(name)
        return await asyncio.to_thread(self._delete, name)

    # The keyring's side, each whole in a worker thread: the first use imports keyring and
    # discovers its backends (entry points, a D-Bus connection), ~0.2 s that on the event loop
    # stalled every request, the first agent run's RUN_STARTED among them.

    def _keyring(self, refusal: str | None = None) -> Any:
        """The ``keyring`` module once its backend is usable; otherwise None, or with
        ``refusal``, Unavailable ``"<refusal>: <why>"`` (code ``secrets_unavailable``)."""
        usable, detail = self.status()
        if not usable:
            if refusal is None:
                return None
            raise Unavailable(f"{refusal}: {detail}", code="secrets_unavailable")
        import keyring
        import keyring.errors  # the callers catch its errors (kr.errors)

        return keyring

    def _read(self, name: str) -> str | None:
        kr = self._keyring()
        if kr is None:
            return None
        try:
            return kr.get_password(SERVICE, name)  # type: ignore[no-any-return]
        except kr.errors.KeyringError:
            return None

    def _write(self, name: str, value: str) -> None:
        kr = self._keyring("cannot store secrets")
        try:
            kr.set_password(SERVICE, name, value)
        except kr.errors.KeyringError as exc:
            raise Unavailable(f"the keyring refused the secret: {exc}", code="secrets_unavailable") from None

    def _delete(self, name: str) -> bool:
        kr = self._keyring("cannot change secrets")
        try:
            kr.delete_password(SERVICE, name)
        except kr.errors.PasswordDeleteError:
            return False
        return True

    def is_set_in_env(self, name: str) -> bool:
        """True when the shell supplied this secret in the environment."""
        return bool(self._env.get(env_name(name)))
