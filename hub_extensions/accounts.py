"""Accounts on NativeAuthenticator: the first admin, admin-created users with generated passwords, renames.

``configure(c, settings)`` swaps NativeAuthenticator (however it is named in ``authenticator_class``) for
:class:`DsNativeAuthenticator`. The rule is one: NativeAuthenticator configured means these features are on;
any other authenticator means they are off (nothing here applies to it).

Why a subclass and not SQLAlchemy insert listeners (upstream): JupyterHub calls ``Authenticator.add_user``
for users an admin creates (``POST /hub/api/users[/<name>]``), but also for every user at start and at a
first login. Only the first must get a generated password (upstream generated one for the startup-created
admin too, so nobody could ever log in as them). Our API handlers (:mod:`~hub_extensions.accounts_api`) set
:data:`CREATED_BY` around JupyterHub's own ``post``, which calls ``add_user`` in the same task.

Passwords are bcrypt-hashed in NativeAuthenticator's ``users_info`` table; a generated one is also kept
(in clear) for 5 minutes in memory for the admin who created it, handed out once, never logged
(generation, policy, hashing pools and that store: :mod:`hub_extensions.passwords`).

Nobody takes over an account by signing up first: a sign-up is refused for any name that is already a hub user
(users from ``allowed_users``, ``load_groups``, ``load_roles`` included), and an admin creating a user over an
earlier sign-up replaces that sign-up's credential with a generated one (recorded in the event trail). The first
admin's credential is created from the Secret once per name (:class:`FirstAdminProvisioned`).

Sign-up and login never stall the hub: bcrypt runs in threads of its own (:func:`off_loop`), a sign-up costs a
few single-row queries (NativeAuthenticator ran one per ``users_info`` row), at most ``maxPendingSignups`` wait
for an admin and at most :data:`MAX_SIGNUPS_HASHING` hash at once. Failed logins are counted per (user name,
client address) in the hub database (:mod:`hub_extensions.lockout`; NativeAuthenticator's own lockout,
``allowed_failed_logins``, is not used), the address read as :mod:`hub_extensions.client_address` says; a browser
that logged in as the name before is counted apart (:data:`KNOWN_BROWSER_COOKIE`), so strangers sharing its address
cannot lock that user out of it.
"""

from __future__ import annotations

import asyncio
import contextvars
import dbm
import math
import os
import re
import time
from typing import Any, ClassVar

from jupyterhub import orm
from jupyterhub.utils import maybe_future
from nativeauthenticator import NativeAuthenticator
from nativeauthenticator.orm import UserInfo
from sqlalchemy import or_
from tornado import web
from traitlets import Any as AnyTrait
from traitlets import default

from . import lockout, passwords, trail
from .client_address import request_address
from .passwords import (
    BCRYPT_MAX_BYTES,
    DUMMY_HASH,
    MAX_LOGINS_HASHING,
    MAX_SIGNUPS_HASHING,
    SIGNUPS_BUSY,
    CredentialStore,
    FirstAdminProvisioned,
    GeneratedPassword,
    check_password_settings,
    ensure_tables,
    generate_password,
    listen_for_renames,
    off_loop,
    wordlist,
)
from .settings import AccountsSettings

FIRST_ADMIN_PASSWORD_ENV = "JUPYTERHUB_DS_FIRST_ADMIN_PASSWORD"
FIRST_ADMIN_SECRET = "jupyterhub-ds-first-admin"

#: A signed cookie (JupyterHub's cookie secret) naming who last logged in from this browser: its failed logins as that
#: name are counted apart from its address's, so strangers behind the same address (a load balancer that hides
#: client addresses, a NAT) cannot lock that user out of a browser they logged in from before.
KNOWN_BROWSER_COOKIE = "jupyterhub-ds-known-browser"
KNOWN_BROWSER_DAYS = 30
KNOWN_BROWSER = "known-browser"  # the lockout's "address" for such a browser

#: "kind:name" of the admin (or service) creating users in the current request; None everywhere else.
CREATED_BY: contextvars.ContextVar[str | None] = contextvars.ContextVar("jupyterhub_ds_created_by", default=None)

#: ``Authenticator.username_pattern``'s default here (a site's own value replaces it; ``""`` turns it off). It
#: refuses control characters (C0, DEL, C1: ``bob\nINFO ...`` forges log lines), whitespace, invisible and
#: bidirectional-control characters (a name that looks like another one), "/" and "," (JupyterHub's and
#: NativeAuthenticator's separators). ``match`` anchors at the start, ``\Z`` at the very end.
USERNAME_PATTERN = (r"[^\x00-\x20\x7f-\xa0\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f"
                    r"\ufeff\ufff9-\ufffb\s/,]+\Z")

NATIVE_NAMES = {"native", "nativeauthenticator", "nativeauthenticator.NativeAuthenticator",
                "nativeauthenticator.nativeauthenticator.NativeAuthenticator"}


# ---------------------------------------------------------------- sign-ups

class SignupRefused(Exception):
    """A sign-up refused with a reason the visitor should read, and the status to answer."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.message = message
        self.status = status


# ---------------------------------------------------------------- the authenticator

class DsNativeAuthenticator(NativeAuthenticator):
    """NativeAuthenticator plus generated passwords for admin-created users, the first admin's credential,
    admin names refused at sign-up, a forced password change, and our handlers for shared routes."""

    ds_accounts = AnyTrait(AccountsSettings(), config=True, help="custom.ds.accounts (set by configure).")
    #: our routes (accounts_api, signups_api), ahead of NativeAuthenticator's and JupyterHub's; set by ``configure``
    ds_handlers: ClassVar[list[tuple[str, type]]] = []

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        ensure_tables(self.db.bind)
        listen_for_renames()
        self.ds_words = wordlist(self.ds_accounts)
        self.ds_credentials = CredentialStore()
        self._warned_no_first_admin_password = False
        lockout.ensure_table(self.db.bind)
        self.ds_lockout = lockout.LoginFailures(self.db, self.ds_accounts.lockout)
        self.ds_signup_attempts = lockout.SlidingWindow()
        self._signups_hashing = 0
        self._logins_hashing = 0
        self.ds_login_attempts = lockout.SlidingWindow()
        self._cap_logged = -60.0
        if self.allowed_failed_logins:
            self.log.info("NativeAuthenticator.allowed_failed_logins (%d) is not used: the lockout is "
                             "custom.ds.accounts.lockout (per user name and client address, kept in the database)",
                             self.allowed_failed_logins)
        if self.check_common_password:  # NativeAuthenticator reads its list lazily: not on the event loop
            self.is_password_common("")

    @default("username_pattern")
    def _ds_username_pattern(self) -> str:
        return USERNAME_PATTERN

    @default("username_regex")
    def _ds_username_regex(self) -> Any:  # upstream compiles only when the pattern is set, not for a default
        return re.compile(self.username_pattern) if self.username_pattern else None

    # --- who may sign up
    def is_admin_name(self, username: str) -> bool:
        """An admin in the config, or a hub user with the admin flag."""
        name = self.normalize_username(username)
        if name in self.admin_users:
            return True
        user = orm.User.find(self.db, name)
        return bool(user is not None and user.admin)

    def signup_refused(self, username: str) -> str | None:
        """Why ``username`` may not sign up (None: it may). Checked on the normalized name, as stored."""
        name = self.normalize_username(username)
        if not self.validate_username(name):
            return (f"{name!r} is not a valid user name: it may not contain spaces, commas, slashes, control, "
                    "invisible or bidirectional characters.")
        if not self.ds_accounts.allow_admin_signup and self.is_admin_name(name):
            return (f'"{name}" is an admin account and cannot be claimed by '
                    "signing up. Log in with the password your hub operator gave you, or ask an admin "
                    "to create your account.")
        if orm.User.find(self.db, name) is not None and not (self.ds_accounts.allow_admin_signup
                                                             and self.is_admin_name(name)):
            return (f'"{name}" is already an account on this hub and cannot be claimed by signing up. Log in '
                    "with its password, or ask an admin to set one.")
        return None

    async def create_user(self, username: str, password: str, **kwargs: Any) -> UserInfo | None:
        """A sign-up: the cheap checks, then bcrypt off the event loop, then the row. None when refused for
        NativeAuthenticator's reasons (its page words them); :class:`SignupRefused` with a reason of ours."""
        name = self.normalize_username(username)
        if (not self.enable_signup or not self.validate_username(name) or self.user_exists(name)
                or self.signup_refused(name)):
            return None
        problem = self.password_problem(name, password)
        if problem:
            raise SignupRefused(problem, 400)
        if not self.is_password_strong(password):
            return None
        pre_authorized = self.open_signup or name in self.admin_users or name in (self.allowed_users or set())
        if not pre_authorized:
            self._check_pending_room(self._signups_hashing)
        if self.signups_busy():
            raise SignupRefused(SIGNUPS_BUSY, 503)
        self._signups_hashing += 1
        try:
            hashed = await off_loop("signup", passwords.hash_password, password)
        finally:
            self._signups_hashing -= 1
        if self.user_exists(name) or self.signup_refused(name):
            return None  # a sign-up (or a hub user) of the same name came first
        if not pre_authorized:
            self._check_pending_room(0)  # exact now: nothing awaits between this count and the insert
        info = self._new_signup(name, hashed, pre_authorized, **kwargs)
        if info is None:
            return None
        if self.allow_self_approval_for and not pre_authorized and re.match(self.allow_self_approval_for,
                                                                              info.email or ""):
            url = self.generate_approval_url(name)
            await asyncio.get_running_loop().run_in_executor(None, self.send_approval_email, info.email, url)
            info.login_email_sent = True
            if self.user_exists(name):
                return None
        self.db.add(info)
        self.db.commit()
        return info

    def signups_busy(self) -> bool:
        """As many sign-ups as :data:`MAX_SIGNUPS_HASHING` are being hashed: turn more away at once."""
        return self._signups_hashing >= MAX_SIGNUPS_HASHING

    def pending_signups(self) -> int:
        """Sign-ups waiting for an admin's authorization (one COUNT query)."""
        return (self.db.query(UserInfo)
                .filter(or_(UserInfo.is_authorized.is_(False), UserInfo.is_authorized.is_(None))).count())

    def _check_pending_room(self, in_flight: int) -> None:
        cap = self.ds_accounts.max_pending_signups
        if self.pending_signups() + in_flight >= cap:
            if time.monotonic() - self._cap_logged >= 60:  # once a minute, not once per refused sign-up
                self._cap_logged = time.monotonic()
                self.log.warning("Sign-ups refused: %d already wait for authorization (maxPendingSignups)", cap)
            raise SignupRefused(f"The hub already has {cap} sign-ups waiting for an admin, the most it takes: try "
                                "again once an admin has authorized or discarded some.", 503)

    @staticmethod
    def _new_signup(name: str, hashed: bytes, pre_authorized: bool, **kwargs: Any) -> UserInfo | None:
        """The ``users_info`` row of a sign-up (not added yet); None for an e-mail address it refuses."""
        try:
            return UserInfo(username=name, password=hashed, is_authorized=pre_authorized, **kwargs)
        except AssertionError:
            return None

    def add_data_from_firstuse(self) -> None:
        """FirstUseAuthenticator's users imported at start (``import_from_firstuse``), hashed here since the hub
        serves nothing yet: NativeAuthenticator's import calls ``create_user``, which is asynchronous here."""
        with dbm.open(self.firstuse_db_path, "c", 0o600) as db:
            for key in db.keys():
                name, password = self.normalize_username(key.decode()), db[key].decode()
                info = None
                if self.validate_username(name) and not self.user_exists(name) and self.is_password_strong(password):
                    info = self._new_signup(name, passwords.hash_password(password), self.open_signup)
                if info is None:
                    raise ValueError(f"User {name} was not imported: check the password rules and the user name")
                self.db.add(info)
                self.db.commit()
        if self.delete_firstuse_db_after_import:
            self.delete_dbm_db()

    # --- logins
    def client_address(self, handler: Any) -> str:
        """The request's client address key (``forwardedHops``); "unknown" without a request."""
        return request_address(handler, self.ds_accounts.forwarded_hops) if handler is not None else "unknown"

    def lockout_address(self, handler: Any, name: str) -> str:
        """Where the lockout counts a login as ``name``: :data:`KNOWN_BROWSER` for a browser holding our signed
        cookie for ``name`` (it logged in as them before), else the client address."""
        get_cookie = getattr(handler, "get_signed_cookie", None)
        if get_cookie is not None:
            value = get_cookie(KNOWN_BROWSER_COOKIE, max_age_days=KNOWN_BROWSER_DAYS)
            if value is not None and value.decode("utf-8", "replace") == name:
                return KNOWN_BROWSER
        return self.client_address(handler)

    def remember_browser(self, handler: Any, name: str) -> None:
        """After a successful login: this browser's failures as ``name`` count apart from now on."""
        set_cookie = getattr(handler, "set_signed_cookie", None)
        if set_cookie is not None:
            set_cookie(KNOWN_BROWSER_COOKIE, name, expires_days=KNOWN_BROWSER_DAYS, path=self.ds_hub_prefix,
                       httponly=True, secure=handler.request.protocol == "https")

    def login_blocked(self, handler: Any, username: str) -> tuple[str, float] | None:
        """Why a login as ``username`` from this client is refused now, and for how many seconds (None: it may
        try)."""
        name = self.normalize_username(username or "")
        wait = self.ds_lockout.blocked_for(name, self.lockout_address(handler, name))
        if not wait:
            return None
        return f"Too many failed logins for {name} from your address: try again in {math.ceil(wait)} seconds.", wait

    async def authenticate(self, handler: Any, data: dict[str, Any]) -> str | None:
        """NativeAuthenticator's check with bcrypt off the event loop, behind our lockout per (user name, client
        address) in the database; NativeAuthenticator's own lockout (``allowed_failed_logins``) is not used."""
        name = self.normalize_username(data.get("username") or "")
        # before any query or hash: attempts per client address, then the hashing queue (the login page says why)
        wait = self.ds_login_attempts.take(self.client_address(handler), self.ds_accounts.logins_per_minute)
        if wait or self._logins_hashing >= MAX_LOGINS_HASHING:
            if handler is not None:
                handler.ds_login_refused = (429, wait) if wait else (503, 60.0)
            return None
        address = self.lockout_address(handler, name)
        if self.ds_lockout.blocked_for(name, address):
            return None  # the login page says why: DsLoginHandler asks login_blocked first
        # counted as a failure before hashing, so guesses sent at once cannot all pass the check above
        blocked = self.ds_lockout.failed(name, address)
        info = self.get_user(name)
        self._logins_hashing += 1
        try:  # a name without a credential costs the same hash: the time says nothing about which names exist
            valid = await off_loop("login", passwords.check_password, data.get("password") or "",
                                   info.password if info is not None else DUMMY_HASH)
        finally:
            self._logins_hashing -= 1
        valid = valid and info is not None
        if valid and info.has_2fa:
            valid = info.is_valid_token(data.get("2fa"))
        if valid:
            self.ds_lockout.succeeded(name, address)
            if not info.is_authorized and handler is not None:
                handler.ds_not_authorized = True  # for the login page's message, without hashing again
            if info.is_authorized:
                self.remember_browser(handler, name)
            return name if info.is_authorized else None
        if blocked:
            message = f"{self.ds_accounts.lockout.failures} failed logins from {address}: blocked for {blocked:.0f} s"
            trail.record("account", name, message=message, action="lockout", address=address, seconds=blocked)
            self.log.warning("Login lockout: %s from %s blocked for %.0f s", name, address, blocked)
        return None

    async def current_password_matches(self, handler: Any, username: str, password: str) -> bool:
        """A signed-in user's current password (the change-password page), checked as a login is: counted by the
        lockout before hashing, bcrypt in the login threads. A session is not the password: it must not guess it
        without limit. Ask :meth:`login_blocked` first."""
        address = self.lockout_address(handler, username)
        self.ds_lockout.failed(username, address)
        info = self.get_user(username)
        if info is None or not await off_loop("login", passwords.check_password, password, info.password):
            return False
        self.ds_lockout.succeeded(username, address)
        return True

    # --- users appear
    async def add_user(self, user: Any) -> None:
        await maybe_future(super().add_user(user))
        creator = CREATED_BY.get()
        if creator is not None:
            await self._give_generated_password(user, creator)
        elif user.name == self.ds_accounts.first_admin:
            await self._ensure_first_admin(user)

    def _drop_signups(self, name: str) -> str | None:
        """Delete every credential row of ``name`` (uncommitted); the replaced one's state, or None."""
        rows = self.db.query(UserInfo).filter(UserInfo.username == name).all()
        for info in rows:
            self.db.delete(info)
        if rows:
            self.db.flush()
        return None if not rows else "authorized" if any(i.is_authorized for i in rows) else "pending"

    def replace_credential(self, name: str, hashed: bytes, by: str) -> None:
        """An authorized credential for ``name`` in place of any sign-up row (committed); a replaced sign-up is
        logged and recorded in the event trail."""
        replaced = self._drop_signups(name)
        self.db.add(UserInfo(username=name, password=hashed, is_authorized=True))
        self.db.commit()
        if replaced is not None:
            message = f"The {replaced} sign-up's credential of {name} was replaced (by {by})"
            self.log.warning("%s", message)
            trail.record("account", name, message=message, replaced_signup=replaced, by=by)

    async def _give_generated_password(self, user: Any, creator: str) -> None:
        """A credential only the creating admin knows. A sign-up under the same name, pending or authorized, is
        replaced: whoever signed up is not who the admin creates (under open sign-up "authorized" proves nothing).
        The replacement is logged and recorded in the event trail for the admin to see."""
        password = generate_password(self.ds_accounts, self.ds_words)
        hashed = await asyncio.get_running_loop().run_in_executor(None, passwords.hash_password, password)
        replaced = self._drop_signups(user.name)
        self.db.add(UserInfo(username=user.name, password=hashed, is_authorized=True))
        if self.ds_accounts.force_password_change:
            self.db.merge(GeneratedPassword(user_id=user.id, password=hashed))
        self.db.commit()
        self.ds_credentials.put(user.name, creator, password)
        self.log.info("Generated a password for %s (created by %s)", user.name, creator)
        if replaced is not None:
            message = (f"The {replaced} sign-up's credential of {user.name} was replaced by a generated password "
                       f"(user created by {creator})")
            self.log.warning("%s", message)
            trail.record("account", user.name, message=message, replaced_signup=replaced, by=creator)

    async def _ensure_first_admin(self, user: Any) -> None:
        """The Secret's password, once per name (:class:`FirstAdminProvisioned`)."""
        if self.db.get(FirstAdminProvisioned, user.name) is not None:
            return
        existing = self.get_user(user.name)
        if existing is not None and existing.is_authorized:  # provisioned before the record existed: keep it
            self.db.add(FirstAdminProvisioned(name=user.name))
            self.db.commit()
            return
        password = os.environ.get(FIRST_ADMIN_PASSWORD_ENV, "")
        if not password:
            if not self._warned_no_first_admin_password:
                self.log.warning("%s is not set: no credential for the first admin %s (the chart passes it "
                                 "from the Secret %s)", FIRST_ADMIN_PASSWORD_ENV, user.name, FIRST_ADMIN_SECRET)
                self._warned_no_first_admin_password = True
            return
        hashed = await asyncio.get_running_loop().run_in_executor(None, passwords.hash_password, password)
        replaced = self._drop_signups(user.name)  # a pending sign-up under the admin's name is nobody's admin
        self.db.add(UserInfo(username=user.name, password=hashed, is_authorized=True))
        self.db.add(FirstAdminProvisioned(name=user.name))
        self.db.commit()
        self.log.info("Created the first admin's credential for %s from %s%s", user.name, FIRST_ADMIN_PASSWORD_ENV,
                      " (replacing a pending sign-up)" if replaced else "")

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

    def must_change_first(self, user: Any) -> bool:
        """Whether the forced change is on and ``user`` has not made it yet."""
        return bool(self.ds_accounts.force_password_change and self.must_change_password(user))

    def change_password_error(self, action: str) -> web.HTTPError:
        """403 pointing to the change-password page (JSON message for the API, a link on HTML pages)."""
        url = f"{self.ds_hub_prefix}change-password"
        e = web.HTTPError(403, f"Change your password before {action}: {url}")
        e.jupyterhub_message = f"Change your password before {action}: {url}"
        e.jupyterhub_html_message = (f'Your password was generated by an admin. <a href="{url}">Change your '
                                     f"password</a> before {action}.")
        return e

    def pre_spawn_start(self, user: Any, spawner: Any) -> None:
        """Refuse the user's OWN start until the forced change; an admin or a service starting the server for
        them goes through (JupyterHub sets ``spawner.handler`` to the requesting handler before this call). The
        user still cannot open that server: ``DsOAuthAuthorizeHandler`` refuses them until they change it."""
        handler = getattr(spawner, "handler", None)
        requester = getattr(handler, "current_user", None)
        own = requester is not None and getattr(requester, "kind", "user") == "user" and requester.name == user.name
        if own and self.must_change_first(user):
            raise self.change_password_error("starting a server")
        return super().pre_spawn_start(user, spawner)

    # --- password policy
    def password_problem(self, username: str, password: str) -> str | None:
        """Why ``password`` may not be ``username``'s (None: it may): the configured minimum length, bcrypt's
        72 bytes, NativeAuthenticator's common-password list (when on), not the user name itself."""
        shortest = max(self.minimum_password_length, self.ds_accounts.min_password_length)
        if len(password) < shortest:
            return f"The password must have at least {shortest} characters."
        if len(password.encode()) > BCRYPT_MAX_BYTES:
            return f"The password may have at most {BCRYPT_MAX_BYTES} bytes."
        if password.casefold() == self.normalize_username(username).casefold():
            return "The password may not be the user name."
        if self.check_common_password and self.is_password_common(password):
            return "The password is too common: choose another one."
        return None

    @property
    def ds_hub_prefix(self) -> str:
        app = self.parent
        return getattr(app, "hub_prefix", "/hub/") if app is not None else "/hub/"

    # --- routes
    def get_handlers(self, app: Any) -> list[tuple[str, type]]:
        ours = list(self.ds_handlers)
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
    sections = (c.Authenticator, c.NativeAuthenticator, c.DsNativeAuthenticator)
    if not any("check_common_password" in s for s in sections):
        c.DsNativeAuthenticator.check_common_password = True
    if not any("minimum_password_length" in s for s in sections):  # password_problem applies the setting anyway
        c.DsNativeAuthenticator.minimum_password_length = settings.min_password_length
    c.Authenticator.admin_users = {*c.Authenticator.get("admin_users", set()), settings.first_admin}
    listen_for_renames()
    return True
