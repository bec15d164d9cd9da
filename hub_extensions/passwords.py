"""Passwords and credentials of :class:`~hub_extensions.accounts.DsNativeAuthenticator`: generation, policy, hashing.

- Generated passwords: xkcd-style words (:func:`generate_password`), settings refused when they would give weak or
  (for bcrypt) too long passwords (:func:`check_password_settings`).
- bcrypt never stalls the hub: it runs in threads of its own (:func:`off_loop`), one pool for sign-ups and one for
  logins, with at most :data:`MAX_SIGNUPS_HASHING` / :data:`MAX_LOGINS_HASHING` waiting; a login name without a
  credential is checked against :data:`DUMMY_HASH` so the time says nothing about which names exist.
- A generated password is handed out once, to the admin who created the user (:class:`CredentialStore`, memory).
- In the hub database: the "must change" marker (:class:`GeneratedPassword`), the first admin's credential created
  once per name (:class:`FirstAdminProvisioned`), and renames that move the credential with the user
  (:func:`listen_for_renames`).
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import bcrypt
from jupyterhub import orm
from nativeauthenticator.orm import UserInfo
from sqlalchemy import Column, DateTime, ForeignKey, Integer, LargeBinary, Unicode, event, inspect
from sqlalchemy.orm import attributes, object_session
from xkcdpass import xkcd_password

from .settings import VALUES_PATH, AccountsSettings, SettingsError

CREDENTIALS_TTL_SECONDS = 300
MIN_PASSWORD_BITS = 40
BCRYPT_MAX_BYTES = 72  # bcrypt 5 refuses longer passwords


# ---------------------------------------------------------------- generated passwords (pure)

def wordlist(settings: AccountsSettings) -> list[str]:
    """xkcdpass's default word file cut to the configured word lengths (read once, at start)."""
    return xkcd_password.generate_wordlist(wordfile=xkcd_password.locate_wordfile(),
                                           min_length=settings.password_min_word_length,
                                           max_length=settings.password_max_word_length)


def check_password_settings(settings: AccountsSettings) -> None:
    """Refuse settings that give weak or (for bcrypt) too long passwords, naming the key."""
    path = f"{VALUES_PATH}.accounts"
    if settings.password_min_word_length > settings.password_max_word_length:
        raise SettingsError(f"{path}.passwordMinWordLength: expected at most passwordMaxWordLength "
                            f"({settings.password_max_word_length}), got {settings.password_min_word_length}")
    words = wordlist(settings)
    longest = (settings.password_words * settings.password_max_word_length
               + (settings.password_words - 1) * len(settings.password_delimiter.encode()))
    if longest > BCRYPT_MAX_BYTES:
        raise SettingsError(f"{path}.passwordWords: generated passwords could reach {longest} bytes; bcrypt "
                            f"takes at most {BCRYPT_MAX_BYTES} (use fewer or shorter words)")
    bits = settings.password_words * math.log2(max(len(words), 1))
    if bits < MIN_PASSWORD_BITS:
        raise SettingsError(f"{path}.passwordWords: {settings.password_words} words from {len(words)} give "
                            f"{bits:.0f} bits; expected at least {MIN_PASSWORD_BITS} (more or longer words)")


def generate_password(settings: AccountsSettings, words: list[str]) -> str:
    """An xkcd-style password (xkcdpass draws with ``random.SystemRandom``)."""
    return xkcd_password.generate_xkcdpassword(words, numwords=settings.password_words,
                                               delimiter=settings.password_delimiter)


def hash_password(password: str) -> bytes:
    """bcrypt hash as NativeAuthenticator stores it (bytes, salt included)."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt())


def check_password(password: str, hashed: bytes) -> bool:
    """bcrypt's own (constant-time) check; False for what bcrypt refuses (over 72 bytes, a damaged hash)."""
    try:
        return bcrypt.checkpw(password.encode(), hashed)
    except ValueError:
        return False


# bcrypt (~0.25 s at cost 12) runs in these threads, never on the event loop (bcrypt lets go of the GIL while
# it hashes). Sign-ups get one thread and logins two of their own, so a sign-up flood never delays a login.
_POOLS: dict[str, ThreadPoolExecutor] = {}
POOL_THREADS = {"signup": 1, "login": 2}
#: sign-ups hashing or waiting to hash at most; more are answered "busy" (503) without hashing
MAX_SIGNUPS_HASHING = 32
SIGNUPS_BUSY = "The hub is busy with other sign-ups: try again in a minute."
#: logins hashing or waiting to hash at most (two threads check ~8 a second); more are answered "busy" (503)
MAX_LOGINS_HASHING = 32
LOGINS_BUSY = "The hub is busy checking other logins: try again in a minute."
#: what a login name without a credential is checked against (bcrypt, cost 12, of a random password nobody kept),
#: so that answer takes as long as for a real account: the time says nothing about which names exist
DUMMY_HASH = b"$2b$12$4uSxF4GOxRL2cag5HNKiL.QBqRW5Rq/1QRdPF3CAJfqkG/0wVUL26"


async def off_loop(pool: str, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in the named bcrypt pool (made at first use)."""
    if pool not in _POOLS:
        _POOLS[pool] = ThreadPoolExecutor(POOL_THREADS[pool], thread_name_prefix=f"ds-bcrypt-{pool}")
    return await asyncio.get_running_loop().run_in_executor(_POOLS[pool], fn, *args)


# ---------------------------------------------------------------- credentials handed out once

class NotOwner(Exception):
    """Credentials were asked for by someone other than the admin who created them."""

    def __init__(self, usernames: list[str]):
        super().__init__(", ".join(usernames))
        self.usernames = usernames


@dataclass
class _Entry:
    owner: str
    password: str
    created: float


class CredentialStore:
    """Generated passwords in memory, for their creator only, within ``ttl`` seconds, once.

    The hub is a single process (Z2JH runs one replica); a restart forgets them, and the admin then
    sets a new password at /hub/change-password/<name>.
    """

    def __init__(self, ttl: float = CREDENTIALS_TTL_SECONDS, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self.clock = clock
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def put(self, username: str, owner: str, password: str) -> None:
        with self._lock:
            self._expire()
            self._entries[username] = _Entry(owner, password, self.clock())

    def take(self, usernames: Iterable[str], owner: str) -> list[dict[str, str]]:
        """Pop and return the owner's credentials among ``usernames``; ``NotOwner`` (nothing popped) when
        some of them belong to another creator. Expired or already taken ones are simply absent."""
        with self._lock:
            self._expire()
            names = list(dict.fromkeys(usernames))
            foreign = [n for n in names if n in self._entries and self._entries[n].owner != owner]
            if foreign:
                raise NotOwner(foreign)
            return [{"username": n, "password": self._entries.pop(n).password}
                    for n in names if n in self._entries]

    def forget(self, username: str) -> None:
        with self._lock:
            self._entries.pop(username, None)

    def rename(self, old: str, new: str) -> None:
        with self._lock:
            if old in self._entries:
                self._entries[new] = self._entries.pop(old)

    def _expire(self) -> None:
        cutoff = self.clock() - self.ttl
        for name in [n for n, e in self._entries.items() if e.created <= cutoff]:
            del self._entries[name]


# ---------------------------------------------------------------- persistent "must change" marker

class GeneratedPassword(orm.Base):
    """The bcrypt hash an admin-created user was given. While ``users_info.password`` still equals it, the
    user has not changed it (survives hub restarts; the row goes with the user through the foreign key)."""

    __tablename__ = "ds_generated_passwords"
    user_id = Column(Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    password = Column(LargeBinary, nullable=False)


class FirstAdminProvisioned(orm.Base):
    """The first admin's credential was created from the Secret under ``name``. Never again: a first admin
    deleted or renamed later does not come back with the install-time password at the next start (no foreign
    key, so the row outlives the user)."""

    __tablename__ = "ds_first_admin_provisioned"
    name = Column(Unicode(255), primary_key=True)
    created = Column(DateTime, nullable=False, default=orm.utcnow)


def ensure_tables(bind: Any) -> None:
    """Create our tables next to JupyterHub's (as NativeAuthenticator does for ``users_info``)."""
    existing = inspect(bind).get_table_names()
    for table in (GeneratedPassword.__table__, FirstAdminProvisioned.__table__):
        if table.name not in existing:
            table.create(bind)


# ---------------------------------------------------------------- renames move the credential

_LISTENING = False


def _on_user_name_set(target: orm.User, value: Any, oldvalue: Any, initiator: Any) -> None:
    if oldvalue in (None, attributes.NO_VALUE, attributes.NEVER_SET) or oldvalue == value:
        return  # a new user gets its first name: nothing to move
    session = object_session(target)
    if session is None:
        return
    with session.no_autoflush:
        stale = session.query(UserInfo).filter(UserInfo.username == value).all()
        for info in stale:  # a sign-up that never became a hub user: the name now belongs to the renamed one
            session.delete(info)
        for info in session.query(UserInfo).filter(UserInfo.username == oldvalue).all():
            info.username = value  # committed (or rolled back) with the rename itself


def listen_for_renames() -> None:
    """Keep ``users_info.username`` equal to the hub user's name on every rename path (API, admin page)."""
    global _LISTENING
    if not _LISTENING:
        event.listen(orm.User.name, "set", _on_user_name_set, active_history=True)  # old value even if expired
        _LISTENING = True
