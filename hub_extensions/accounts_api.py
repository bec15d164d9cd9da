"""Account routes of :class:`~hub_extensions.accounts.DsNativeAuthenticator` (sign-ups: :mod:`.signups_api`).

JupyterHub puts the authenticator's handlers before its own, so these win for the same paths:

- ``/api/users`` and ``/api/users/<name>``: JupyterHub's handlers, with ``POST`` marking "created by this
  admin" (:data:`~hub_extensions.accounts.CREATED_BY`) so ``add_user`` generates a password.
- ``POST /api/admin/credentials``: the generated passwords, once, to the admin who created them.
- ``/login``: the lockout per (user name, client address) says why (429); the password is checked once, off the
  event loop (NativeAuthenticator's page checked a failed one a second time, on the loop).
- ``/change-password`` and ``/change-password/<name>``: the password policy
  (:meth:`~hub_extensions.accounts.DsNativeAuthenticator.password_problem`), bcrypt off the event loop; a user's
  wrong current passwords count as failed logins (the lockout).
- ``/api/oauth2/authorize`` and ``POST /api/users/<name>/tokens``: refused to a user who must still change an
  admin-generated password (an admin may start their server; they may not use it before the change).

The credential route and ``/change-password/<name>`` need unfiltered ``admin:users``: a password is a whole
account, whoever holds it. Names are normalized as the authenticator does before any check.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from jupyterhub.apihandlers.auth import OAuthAuthorizeHandler
from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.apihandlers.users import UserAPIHandler, UserListAPIHandler, UserTokenListAPIHandler
from jupyterhub.scopes import needs_scope
from nativeauthenticator.handlers import ChangePasswordAdminHandler, ChangePasswordHandler
from nativeauthenticator.handlers import LoginHandler as NativeLoginHandler
from tornado import web

from . import scopes
from .accounts import CREATED_BY
from .handler_base import Utf8JsonBody, holds_unfiltered, needs_unfiltered_scope
from .passwords import LOGINS_BUSY, NotOwner, hash_password


def creator_of(handler: Any) -> str:
    """Who is asking: ``user:<name>`` or ``service:<name>`` (a user and a service may share a name)."""
    entity = handler.current_user
    return f"{getattr(entity, 'kind', 'user')}:{entity.name}"


class DsUserListAPIHandler(Utf8JsonBody, UserListAPIHandler):
    """JupyterHub's ``/api/users``; users created by ``POST`` (unfiltered ``admin:users``: new users are in no
    group a delegate manages) get generated passwords."""

    def get_api_pagination(self) -> tuple[int, int]:
        """JupyterHub's, with the offset kept within SQL's 64-bit integers (a larger one was a 500)."""
        offset, limit = super().get_api_pagination()
        return min(offset, 2**63 - 1), limit

    # before creator_of: an anonymous request gets JupyterHub's 403, not a 500. Unfiltered: the request names no
    # user, so a grant filtered to a group would pass JupyterHub's check and create anyone
    @needs_unfiltered_scope(scopes.ADMIN)
    async def post(self) -> None:
        token = CREATED_BY.set(creator_of(self))
        try:
            await super().post()
        finally:
            CREATED_BY.reset(token)


def check_new_name(handler: Any, name: Any) -> None:
    """400 unless ``name`` is a user name as the authenticator stores it: normalized and valid (JupyterHub's own
    ``POST /api/users/<name>`` and rename take the name as sent)."""
    auth = handler.authenticator
    if not isinstance(name, str) or auth.normalize_username(name) != name or not auth.validate_username(name):
        raise web.HTTPError(400, f"Invalid user name {name!r}: expected it normalized (lowercase) and without spaces, "
                                 "commas, slashes, control, invisible or bidirectional characters")


class DsUserAPIHandler(Utf8JsonBody, UserAPIHandler):
    """JupyterHub's ``/api/users/<name>``; a user created by ``POST`` gets a generated password. New names (create,
    rename) follow the one name rule; a grant filtered to a group renames nobody into an ``admin_users`` name
    (JupyterHub makes that user an admin at its next start)."""

    @needs_scope("admin:users")
    async def patch(self, user_name: str) -> None:
        body = self.get_json_body()
        if isinstance(body, dict) and "name" in body and body["name"] != user_name:
            check_new_name(self, body["name"])
            if body["name"] in self.authenticator.admin_users and not holds_unfiltered(self, (scopes.ADMIN,)):
                raise web.HTTPError(403, f"{body['name']} is an admin name: renaming a user to it needs "
                                         f"[{scopes.ADMIN}] without a filter")
        return await super().patch(user_name)

    @needs_scope("admin:users")  # as JupyterHub's own post: checked before creator_of reads current_user
    async def post(self, user_name: str) -> None:
        check_new_name(self, user_name)
        token = CREATED_BY.set(creator_of(self))
        try:
            await super().post(user_name)
        finally:
            CREATED_BY.reset(token)


def parse_usernames(body: Any) -> list[str]:
    """``{"usernames": ["a", ...]}`` -> the names; ValueError with the reason otherwise."""
    if not isinstance(body, dict):
        raise ValueError('Expected a JSON object {"usernames": [...]}')
    names = body.get("usernames")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise ValueError('"usernames" must be a non-empty list of user names')
    if len(names) > 1000:
        raise ValueError('"usernames" may hold at most 1000 names')
    return names


class CredentialsAPIHandler(Utf8JsonBody, APIHandler):
    """``POST /api/admin/credentials`` ``{"usernames": [...]}`` -> ``{"credentials": [{"username", "password"}]}``.

    Only passwords this admin generated in the last 5 minutes and not yet read; a second read gets none.
    Unfiltered ``admin:users`` only: a password is a whole account, whoever holds it.
    """

    @needs_unfiltered_scope(scopes.ADMIN)
    async def post(self) -> None:
        try:
            body = self.get_json_body()
        except web.HTTPError:
            raise web.HTTPError(400, 'Expected a JSON object {"usernames": [...]}') from None
        try:
            names = parse_usernames(body)
        except ValueError as e:
            raise web.HTTPError(400, str(e)) from None
        unknown = [n for n in names if self.find_user(n) is None]
        if unknown:
            raise web.HTTPError(404, f"No such user: {', '.join(unknown)}")
        try:
            credentials = self.authenticator.ds_credentials.take(names, creator_of(self))
        except NotOwner as e:
            raise web.HTTPError(403, f"Credentials of {', '.join(e.usernames)} belong to the admin who "
                                     "created them") from None
        self.set_header("Cache-Control", "no-store")
        self.write({"credentials": credentials})


class DsLoginHandler(NativeLoginHandler):
    """NativeAuthenticator's login page, with the password checked once, off the event loop (its own handler
    checks a failed one again, on the loop, to word the message), and a client the lockout blocks told so (429)."""

    async def post(self) -> None:
        data = {arg: self.get_argument(arg, strip=arg == "username") for arg in self.request.body_arguments
                if arg != "_xsrf"}
        username = data.get("username", "")
        blocked = self.authenticator.login_blocked(self, username)
        if blocked is not None:
            message, wait = blocked
            self.set_status(429)
            self.set_header("Retry-After", str(math.ceil(wait)))
            self.finish(await self._render(login_error=message, username=username))
            return
        user = await self.login_user(data)
        if user:
            self._jupyterhub_user = user
            # a login is activity: the sign-up of a user who has logged in is theirs (SignupAPIHandler.post)
            if self._record_activity(user.orm_user):
                self.db.commit()
            self.redirect(self.get_next_url(user))
            return
        refused = getattr(self, "ds_login_refused", None)  # set by authenticate: too many attempts, or busy
        if refused is not None:
            status, wait = refused
            self.set_status(status)
            self.set_header("Retry-After", str(math.ceil(wait)))
            message = (f"Too many login attempts from your address: try again in {math.ceil(wait)} seconds."
                       if status == 429 else LOGINS_BUSY)
            self.finish(await self._render(login_error=message, username=username))
            return
        error = "Invalid username or password."
        if getattr(self, "ds_not_authorized", False):  # set by authenticate: right password, not authorized yet
            error = f"User {username} has not been authorized by an administrator yet."
        self.finish(await self._render(login_error=error, username=username))


async def bcrypt_hash(password: str) -> bytes:
    return await asyncio.get_running_loop().run_in_executor(None, hash_password, password)


class DsChangePasswordHandler(ChangePasswordHandler):
    """A user's own change: the password policy, a new password (a forced change cannot keep the generated one),
    bcrypt off the event loop, the current password under the login lockout."""

    @web.authenticated
    async def post(self) -> None:
        user = self.current_user
        old = self.get_body_argument("old_password", strip=False)
        new = self.get_body_argument("new_password", strip=False)
        confirmation = self.get_body_argument("new_password_confirmation", strip=False)
        blocked = self.authenticator.login_blocked(self, user.name)
        alert, message = "alert-danger", None
        if blocked is not None:  # the lockout counts wrong current passwords as failed logins
            message = blocked[0]
            self.set_status(429)
        elif not await self.authenticator.current_password_matches(self, user.name, old):
            message = "Your current password was incorrect. Please try again."
        elif new != confirmation:
            message = "Your new password didn't match the confirmation. Please try again."
        elif new == old:
            message = "The new password must differ from your current one."
        else:
            message = self.authenticator.password_problem(user.name, new)
        if message is None:
            hashed = await bcrypt_hash(new)
            info = self.authenticator.get_user(user.name)
            info.password = hashed
            self.db.commit()
            self.log.info("%s changed their password", user.name)
            alert, message = "alert-success", "Your password has been changed successfully!"
        html = await self.render_template("change-password.html", user_name=user.name, result_message=message,
                                          alert=alert)
        self.finish(html)


class DsChangePasswordAdminHandler(ChangePasswordAdminHandler):
    """An admin sets a user's password: unfiltered ``admin:users`` (a delegate's ``admin:users!group=x`` must not
    take over the first admin), the password policy, bcrypt off the event loop. A hub user without a credential
    (from ``allowed_users``, ``load_groups``, ``load_roles``: they cannot sign up) gets one, authorized."""

    def target(self, user_name: str) -> str:
        name = self.authenticator.normalize_username(user_name)
        if self.authenticator.get_user(name) is None and self.find_user(name) is None:
            raise web.HTTPError(404, f"No such user: {name}")
        return name

    @needs_unfiltered_scope(scopes.ADMIN)
    async def get(self, user_name: str) -> None:
        name = self.target(user_name)
        self.finish(await self.render_template("change-password-admin.html", user_name=name))

    @needs_unfiltered_scope(scopes.ADMIN)
    async def post(self, user_name: str) -> None:
        name = self.target(user_name)
        new = self.get_body_argument("new_password", strip=False)
        confirmation = self.get_body_argument("new_password_confirmation", strip=False)
        alert = "alert-danger"
        if new != confirmation:
            message = "The new password didn't match the confirmation. Please try again."
        else:
            message = self.authenticator.password_problem(name, new)
        if message is None:
            hashed = await bcrypt_hash(new)
            info = self.authenticator.get_user(name)
            if info is not None and info.is_authorized:
                info.password = hashed
                self.db.commit()
            else:  # none, or a sign-up nobody authorized: the admin's password replaces it (e-mail and 2FA too)
                self.authenticator.replace_credential(name, hashed, f"user:{self.current_user.name}")
            self.log.info("Password of %s set by %s", name, self.current_user.name)
            alert, message = "alert-success", f"The password for {name} has been changed successfully"
        html = await self.render_template("change-password-admin.html", user_name=name, result_message=message,
                                          alert=alert)
        self.finish(html)


class DsOAuthAuthorizeHandler(OAuthAuthorizeHandler):
    """JupyterHub's OAuth authorization (how a browser gets into a single-user server or a service), refused to a
    user who must still change an admin-generated password: an admin may start their server, they may not use it
    before the change."""

    def refuse_before_change(self) -> None:
        user = self.current_user
        if user is not None and getattr(user, "kind", "user") == "user" and self.authenticator.must_change_first(user):
            raise self.authenticator.change_password_error("opening a server")

    def extract_oauth_params(self) -> tuple[str, str, bytes, Any]:
        """What oauthlib reads: an authorization request is its query, so a GET's body is dropped (oauthlib would
        decode it outside any error handling); a POST's body must be UTF-8 (400, not a 500)."""
        uri, method, body, headers = super().extract_oauth_params()
        if method == "GET":
            return uri, method, b"", headers
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            raise web.HTTPError(400, "The request body is not UTF-8") from None
        return uri, method, body, headers

    async def get(self) -> None:
        self.refuse_before_change()
        return await super().get()

    def post(self) -> None:
        self.refuse_before_change()
        return super().post()


class DsUserTokenListAPIHandler(Utf8JsonBody, UserTokenListAPIHandler):
    """JupyterHub's token creation, refused for a user's own tokens before the forced change (a token would
    reach their server without the OAuth step above)."""

    async def post(self, user_name: str) -> None:
        requester = self.current_user
        if requester is not None and getattr(requester, "kind", "user") == "user" and requester.name == user_name:
            if self.authenticator.must_change_first(requester):
                raise self.authenticator.change_password_error("creating tokens")
        return await super().post(user_name)

    async def authenticate(self, data: Any) -> Any:
        """A password in the body (a request without a session): checked first, so a stranger learns nothing about
        an account; JupyterHub turns the refusal into its plain 403."""
        name = await super().authenticate(data)
        user = self.find_user(name.get("name") if isinstance(name, dict) else name) if name else None
        if user is not None and self.authenticator.must_change_first(user):
            raise self.authenticator.change_password_error("creating tokens")
        return name


def handlers() -> list[tuple[str, type]]:
    """Routes relative to the hub prefix; they take precedence over NativeAuthenticator's and JupyterHub's."""
    return [
        (r"/api/users", DsUserListAPIHandler),
        (r"/api/users/([^/]+)", DsUserAPIHandler),
        (r"/api/admin/credentials", CredentialsAPIHandler),
        (r"/api/oauth2/authorize", DsOAuthAuthorizeHandler),
        (r"/api/users/([^/]+)/tokens", DsUserTokenListAPIHandler),
        (r"/login", DsLoginHandler),
        (r"/change-password", DsChangePasswordHandler),
        (r"/change-password/([^/]+)", DsChangePasswordAdminHandler),
    ]
