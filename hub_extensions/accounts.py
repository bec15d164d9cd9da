"""Accounts on NativeAuthenticator: the first admin, admin-created users with generated passwords, renames.

``configure(c, settings)`` swaps NativeAuthenticator (however it is named in ``authenticator_class``) for
:class:`DsNativeAuthenticator`. The rule is one: NativeAuthenticator configured means these features are on;
any other authenticator means they are off (nothing here applies to it).

Why a subclass and not SQLAlchemy insert listeners (upstream): JupyterHub calls ``Authenticator.add_user``
for users an admin creates (``POST /hub/api/users[/<name>]``), but also for every user at start and at a
first login. Only the first must get a generated password (upstream generated one for the startup-created
admin too, so nobody could ever log in as them). Our API handlers (``accounts_handlers``) set
:data:`CREATED_BY` around JupyterHub's own ``post``, which calls ``add_user`` in the same task.

Passwords are bcrypt-hashed in NativeAuthenticator's ``users_info`` table; a generated one is also kept
(in clear) for 5 minutes in memory for the admin who created it, handed out once, never logged.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import bcrypt
from jupyterhub import orm
from jupyterhub.utils import maybe_future
from nativeauthenticator import NativeAuthenticator
from nativeauthenticator.orm import UserInfo
from sqlalchemy import Column, ForeignKey, Integer, LargeBinary, event, inspect
from sqlalchemy.orm import attributes, object_session
from tornado import web
from traitlets import Any as AnyTrait
from xkcdpass import xkcd_password

from .settings import VALUES_PATH, AccountsSettings, SettingsError

FIRST_ADMIN_PASSWORD_ENV = "JUPYTERHUB_DS_FIRST_ADMIN_PASSWORD"
FIRST_ADMIN_SECRET = "jupyterhub-ds-first-admin"
CREDENTIALS_TTL_SECONDS = 300
MIN_PASSWORD_BITS = 40
BCRYPT_MAX_BYTES = 72  # bcrypt 5 refuses longer passwords

#: "kind:name" of the admin (or service) creating users in the current request; None everywhere else.
CREATED_BY: contextvars.ContextVar[str | None] = contextvars.ContextVar("jupyterhub_ds_created_by", default=None)

NATIVE_NAMES = {"native", "nativeauthenticator", "nativeauthenticator.NativeAuthenticator",
                "nativeauthenticator.nativeauthenticator.NativeAuthenticator"}


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


def ensure_tables(bind: Any) -> None:
    """Create our table next to JupyterHub's (as NativeAuthenticator does for ``users_info``)."""
    if GeneratedPassword.__tablename__ not in inspect(bind).get_table_names():
        GeneratedPassword.__table__.create(bind)


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


# ---------------------------------------------------------------- the authenticator

class DsNativeAuthenticator(NativeAuthenticator):
    """NativeAuthenticator plus generated passwords for admin-created users, the first admin's credential,
    admin names refused at sign-up, a forced password change, and our handlers for shared routes."""

    ds_accounts = AnyTrait(AccountsSettings(), config=True, help="custom.ds.accounts (set by configure).")

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        ensure_tables(self.db.bind)
        listen_for_renames()
        self.ds_words = wordlist(self.ds_accounts)
        self.ds_credentials = CredentialStore()
        self._warned_no_first_admin_password = False

    # --- who may sign up
    def is_admin_name(self, username: str) -> bool:
        """An admin in the config, or a hub user with the admin flag."""
        name = self.normalize_username(username)
        if name in self.admin_users:
            return True
        user = orm.User.find(self.db, name)
        return bool(user is not None and user.admin)

    def signup_refused(self, username: str) -> str | None:
        """Why ``username`` may not sign up (None: it may)."""
        if not self.ds_accounts.allow_admin_signup and self.is_admin_name(username):
            return (f'"{self.normalize_username(username)}" is an admin account and cannot be claimed by '
                    "signing up. Log in with the password your hub operator gave you, or ask an admin "
                    "to create your account.")
        return None

    def create_user(self, username: str, password: str, **kwargs: Any) -> Any:
        if self.signup_refused(username):
            return None
        return super().create_user(username, password, **kwargs)

    # --- users appear
    async def add_user(self, user: Any) -> None:
        await maybe_future(super().add_user(user))
        creator = CREATED_BY.get()
        if creator is not None:
            await self._give_generated_password(user, creator)
        elif user.name == self.ds_accounts.first_admin:
            await self._ensure_first_admin(user)

    async def _give_generated_password(self, user: Any, creator: str) -> None:
        if self.get_user(user.name) is not None:
            return  # a credential exists (e.g. a pending sign-up): never overwrite it
        password = generate_password(self.ds_accounts, self.ds_words)
        hashed = await asyncio.get_running_loop().run_in_executor(None, hash_password, password)
        self.db.add(UserInfo(username=user.name, password=hashed, is_authorized=True))
        if self.ds_accounts.force_password_change:
            self.db.merge(GeneratedPassword(user_id=user.id, password=hashed))
        self.db.commit()
        self.ds_credentials.put(user.name, creator, password)
        self.log.info("Generated a password for %s (created by %s)", user.name, creator)

    async def _ensure_first_admin(self, user: Any) -> None:
        if self.get_user(user.name) is not None:
            return
        password = os.environ.get(FIRST_ADMIN_PASSWORD_ENV, "")
        if not password:
            if not self._warned_no_first_admin_password:
                self.log.warning("%s is not set: no credential for the first admin %s (the chart passes it "
                                 "from the Secret %s)", FIRST_ADMIN_PASSWORD_ENV, user.name, FIRST_ADMIN_SECRET)
                self._warned_no_first_admin_password = True
            return
        hashed = await asyncio.get_running_loop().run_in_executor(None, hash_password, password)
        self.db.add(UserInfo(username=user.name, password=hashed, is_authorized=True))
        self.db.commit()
        self.log.info("Created the first admin's credential for %s from %s", user.name, FIRST_ADMIN_PASSWORD_ENV)

    def delete_user(self, user: Any) -> Any:
        self.ds_credentials.forget(user.name)
        user_id = getattr(user, "id", None)  # NativeAuthenticator's Discard passes a name-only stand-in
        marker = self.db.get(GeneratedPassword, user_id) if user_id is not None else None
        if marker is not None:  # the foreign key would drop it too; this keeps the session's view in step
            self.db.delete(marker)
        return super().delete_user(user)  # deletes the credential and commits

    # --- forced password change
    def must_change_password(self, user: Any) -> bool:
        """True while the user still has the password an admin generated for them."""
        marker = self.db.get(GeneratedPassword, user.id)
        if marker is None:
            return False
        info = self.get_user(user.name)
        if info is None or info.password != marker.password:
            self.db.delete(marker)  # changed (or gone): the marker has done its job
            self.db.commit()
            return False
        return True

    def pre_spawn_start(self, user: Any, spawner: Any) -> None:
        if self.ds_accounts.force_password_change and self.must_change_password(user):
            url = f"{self.ds_hub_prefix}change-password"
            e = web.HTTPError(403, f"Change your password before starting a server: {url}")
            e.jupyterhub_message = f"Change your password before starting a server: {url}"
            e.jupyterhub_html_message = (f'Your password was generated by an admin. <a href="{url}">Change your '
                                         "password</a> before starting a server.")
            raise e
        return super().pre_spawn_start(user, spawner)

    @property
    def ds_hub_prefix(self) -> str:
        app = self.parent
        return getattr(app, "hub_prefix", "/hub/") if app is not None else "/hub/"

    # --- routes
    def get_handlers(self, app: Any) -> list[tuple[str, type]]:
        from . import accounts_handlers  # handlers import JupyterHub's API handlers: keep them out of pure use

        ours = accounts_handlers.handlers()
        taken = {route for route, *_ in ours}
        return ours + [h for h in super().get_handlers(app) if h[0] not in taken]


# ---------------------------------------------------------------- configure

def is_native(authenticator_class: Any) -> bool:
    """Whether the configured authenticator is NativeAuthenticator (entry-point name, import path or class)."""
    if isinstance(authenticator_class, str):
        return authenticator_class in NATIVE_NAMES
    return isinstance(authenticator_class, type) and issubclass(authenticator_class, NativeAuthenticator)


def configure(c: Any, settings: AccountsSettings) -> bool:
    """Use :class:`DsNativeAuthenticator` when NativeAuthenticator is configured; returns whether it is."""
    check_password_settings(settings)
    if not is_native(c.JupyterHub.get("authenticator_class")):
        return False
    c.JupyterHub.authenticator_class = DsNativeAuthenticator
    c.DsNativeAuthenticator.ds_accounts = settings
    c.Authenticator.admin_users = {*c.Authenticator.get("admin_users", set()), settings.first_admin}
    listen_for_renames()
    return True
