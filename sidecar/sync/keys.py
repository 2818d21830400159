"""The sync key: 256 random bits in the OS keyring, shown to the user as BIP39 recovery words.

The secret ``sync_key`` holds a small JSON keychain ``{"v": 1, "current": kid, "keys": [words…]}``
so keys can rotate while old batches still decrypt. ``SIDECAR_SECRET_SYNC_KEY`` (or a keyring
value written by hand) may instead carry the recovery words of one key. Words come from the
``mnemonic`` package (BIP39, English list, 24 words with a checksum), so a mistyped word is
caught before anything is decrypted with a wrong key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field

from mnemonic import Mnemonic

from sidecar.errors import ValidationFailed
from sidecar.logs import redact
from sidecar.secrets import SecretStore

KEY_BYTES = 32
SECRET_NAME = "sync_key"
_WORDS = Mnemonic("english")


class InvalidRecoveryKey(ValidationFailed):
    """422 ``invalid_recovery_key``: the words are not a valid recovery key."""

    code = "invalid_recovery_key"


def key_id_of(secret: bytes) -> str:
    """The key's public id: 16 hex digits of HMAC-SHA256(key, "sidecar-sync key id"). The
    same key gives the same id on every device; the id reveals nothing of the key."""
    return hmac.new(secret, b"sidecar-sync key id", hashlib.sha256).hexdigest()[:16]


@dataclass(frozen=True)
class SyncKey:
    """One 256-bit key and its id."""

    secret: bytes = field(repr=False)
    key_id: str = ""

    def __post_init__(self) -> None:
        if len(self.secret) != KEY_BYTES:
            raise ValueError("a sync key is 32 bytes")
        object.__setattr__(self, "key_id", key_id_of(self.secret))

    @classmethod
    def generate(cls) -> SyncKey:
        """A new random key (``os.urandom`` through :mod:`secrets`)."""
        return cls(secrets.token_bytes(KEY_BYTES))

    @property
    def recovery_words(self) -> str:
        """The key as 24 BIP39 words separated by single spaces."""
        return str(_WORDS.to_mnemonic(self.secret))

    @classmethod
    def from_recovery(cls, text: str) -> SyncKey:
        """Parse recovery words (case and extra whitespace ignored).

        Raises:
            InvalidRecoveryKey: wrong word count, a word not in the list, or a failed checksum.
        """
        words = " ".join(text.lower().split())
        count = len(words.split())
        if count != 24:
            raise InvalidRecoveryKey.field("recoveryKey", f"a recovery key is 24 words; got {count}",
                                           "recovery_key_length")
        unknown = [w for w in words.split() if w not in _WORDS.wordlist]
        if unknown:
            raise InvalidRecoveryKey.field("recoveryKey", f"not recovery-key words: {', '.join(unknown[:3])}",
                                           "recovery_key_word")
        if not _WORDS.check(words):
            raise InvalidRecoveryKey.field(
                "recoveryKey", "the words fail their checksum: one is mistyped or they are out of order",
                "recovery_key_checksum")
        return cls(bytes(_WORDS.to_entropy(words)))


@dataclass
class Keychain:
    """Every key this device knows, by id, and the one new batches are sealed with."""

    keys: dict[str, SyncKey]
    current: str

    @classmethod
    def of(cls, key: SyncKey) -> Keychain:
        return cls({key.key_id: key}, key.key_id)

    @property
    def current_key(self) -> SyncKey:
        return self.keys[self.current]

    def add(self, key: SyncKey, *, make_current: bool) -> None:
        """Learn a key (e.g. imported from another device); optionally seal with it from now on."""
        self.keys[key.key_id] = key
        if make_current:
            self.current = key.key_id

    def rotate(self) -> SyncKey:
        """A new current key; the old ones stay for decrypting what they sealed."""
        key = SyncKey.generate()
        self.add(key, make_current=True)
        return key

    def dump(self) -> str:
        """The secret's text form."""
        ordered = [self.current_key, *(k for kid, k in self.keys.items() if kid != self.current)]
        return json.dumps({"v": 1, "current": self.current, "keys": [k.recovery_words for k in ordered]})

    @classmethod
    def parse(cls, text: str) -> Keychain:
        """From :meth:`dump`'s JSON or from bare recovery words. Raises InvalidRecoveryKey."""
        text = text.strip()
        if not text.startswith("{"):
            return cls.of(SyncKey.from_recovery(text))
        try:
            data = json.loads(text)
            keys = [SyncKey.from_recovery(w) for w in data["keys"]]
            chain = cls({k.key_id: k for k in keys}, str(data["current"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidRecoveryKey.field("sync_key", f"the stored sync key is unreadable: {exc}") from None
        if chain.current not in chain.keys:
            raise InvalidRecoveryKey.field("sync_key", "the stored sync key names no current key")
        return chain


async def load_keychain(secrets_store: SecretStore) -> Keychain | None:
    """The keychain from the keyring (or ``SIDECAR_SECRET_SYNC_KEY``); None when none is set.

    Raises:
        InvalidRecoveryKey: the stored value is not a usable key.
    """
    text = await secrets_store.get(SECRET_NAME)
    if not text:
        return None
    chain = Keychain.parse(text)
    for k in chain.keys.values():
        redact(k.recovery_words)
    return chain


async def save_keychain(secrets_store: SecretStore, chain: Keychain) -> None:
    """Store the keychain in the OS keyring (never a file). Raises Unavailable without one."""
    text = chain.dump()
    redact(text)
    await secrets_store.set(SECRET_NAME, text)
