"""Routes of :class:`~hub_extensions.accounts.DsNativeAuthenticator`.

JupyterHub puts the authenticator's handlers before its own, so these win for the same paths:

- ``/api/users`` and ``/api/users/<name>``: JupyterHub's handlers, with ``POST`` marking "created by this
  admin" (:data:`~hub_extensions.accounts.CREATED_BY`) so ``add_user`` generates a password.
- ``POST /api/admin/credentials``: the generated passwords, once, to the admin who created them.
- ``/signup``: refuses admin names with a clear message (NativeAuthenticator would pre-authorize them).
- ``GET /api/ds/signups`` and ``POST /api/ds/signups/<name>`` ``{"authorized": bool}``: NativeAuthenticator's
  sign-ups as JSON, and an idempotent authorize (its page's ``/authorize/<name>`` toggles, answers HTML and is
  not usable by a service such as ``kubectl jupyterhub``).
- ``/discard/<name>``: refused for hub users (deleting a user must go through JupyterHub, which applies the
  storage policy); ``/authorize``: our page, without Discard for hub users.
"""

from __future__ import annotations

from typing import Any

from jupyterhub import orm
from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.apihandlers.users import UserAPIHandler, UserListAPIHandler
from jupyterhub.scopes import needs_scope
from nativeauthenticator.handlers import AuthorizationAreaHandler, DiscardHandler, SignUpHandler
from nativeauthenticator.orm import UserInfo
from tornado import web

from .accounts import CREATED_BY, NotOwner


def creator_of(handler: Any) -> str:
    """Who is asking: ``user:<name>`` or ``service:<name>`` (a user and a service may share a name)."""
    entity = handler.current_user
    return f"{getattr(entity, 'kind', 'user')}:{entity.name}"


class DsUserListAPIHandler(UserListAPIHandler):
    """JupyterHub's ``/api/users``; users created by ``POST`` get generated passwords."""

    async def post(self) -> None:
        token = CREATED_BY.set(creator_of(self))
        try:
            await super().post()
        finally:
            CREATED_BY.reset(token)


class DsUserAPIHandler(UserAPIHandler):
    """JupyterHub's ``/api/users/<name>``; a user created by ``POST`` gets a generated password."""

    async def post(self, user_name: str) -> None:
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


class CredentialsAPIHandler(APIHandler):
    """``POST /api/admin/credentials`` ``{"usernames": [...]}`` -> ``{"credentials": [{"username", "password"}]}``.

    Only passwords this admin generated in the last 5 minutes and not yet read; a second read gets none.
    """

    @needs_scope("admin:users")
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


def signup_json(info: Any, hub_users: set[str]) -> dict[str, Any]:
    return {"username": info.username, "email": info.email or None, "authorized": bool(info.is_authorized),
            "hub_user": info.username in hub_users}


def parse_authorized(body: Any) -> bool:
    """``{"authorized": true|false}`` (an empty body means true) -> the flag; ValueError otherwise."""
    if body is None:
        return True
    if not isinstance(body, dict) or not isinstance(body.get("authorized", True), bool):
        raise ValueError('Expected a JSON object {"authorized": true|false}')
    return body.get("authorized", True)


class SignupsAPIHandler(APIHandler):
    """``GET /api/ds/signups``: ``{"signups": [{"username", "email", "authorized", "hub_user"}]}``."""

    @needs_scope("admin:users")
    async def get(self) -> None:
        infos = self.db.query(UserInfo).order_by(UserInfo.username).all()
        names = [i.username for i in infos]
        hub_users = {n for (n,) in self.db.query(orm.User.name).filter(orm.User.name.in_(names))} if names else set()
        self.write({"signups": [signup_json(i, hub_users) for i in infos]})


class SignupAPIHandler(APIHandler):
    """``POST /api/ds/signups/<name>`` ``{"authorized": bool}``: set (not toggle) a sign-up's authorization."""

    @needs_scope("admin:users")
    async def post(self, user_name: str) -> None:
        try:
            authorized = parse_authorized(self.get_json_body())
        except web.HTTPError:
            raise web.HTTPError(400, 'Expected a JSON object {"authorized": true|false}') from None
        except ValueError as e:
            raise web.HTTPError(400, str(e)) from None
        info = self.db.query(UserInfo).filter(UserInfo.username == user_name).first()
        if info is None:
            raise web.HTTPError(404, f"No sign-up named {user_name}")
        if bool(info.is_authorized) != authorized:
            info.is_authorized = authorized
            self.db.commit()
            self.log.info("Sign-up %s %s by %s", user_name, "authorized" if authorized else "unauthorized",
                          self.current_user.name)
        hub_user = self.find_user(user_name) is not None
        self.write(signup_json(info, {user_name} if hub_user else set()))


class DsSignUpHandler(SignUpHandler):
    """NativeAuthenticator's sign-up, refusing admin names with a message that says why."""

    async def post(self) -> None:
        if not self.authenticator.enable_signup:
            raise web.HTTPError(404)
        refused = self.authenticator.signup_refused(self.get_body_argument("username", "", strip=False))
        if refused is None:
            return await super().post()
        html = await self.render_template(
            "signup.html", ask_email=self.authenticator.ask_email_on_signup, result_message=refused,
            alert="alert-danger", two_factor_auth=self.authenticator.allow_2fa,
            recaptcha_key=self.authenticator.recaptcha_key, tos=self.authenticator.tos)
        self.set_status(403)
        self.finish(html)


class DsDiscardHandler(DiscardHandler):
    """Discard a sign-up; refused for hub users, whose deletion must run JupyterHub's (and our storage) policy."""

    @needs_scope("admin:users")
    async def get(self, user_name: str) -> None:
        if self.find_user(user_name) is not None:
            raise web.HTTPError(409, f"{user_name} is a hub user: delete the user from the admin page "
                                     "(Admin > Edit User > Delete User), which applies the storage policy, "
                                     "instead of discarding the sign-up.")
        return await super().get(user_name)


class DsAuthorizationAreaHandler(AuthorizationAreaHandler):
    """The authorization page (our template): Discard is offered only for sign-ups that are not hub users."""

    @needs_scope("admin:users")
    async def get(self) -> None:
        infos = self.db.query(UserInfo).order_by(UserInfo.username).all()
        names = [i.username for i in infos]
        hub_users = {n for (n,) in self.db.query(orm.User.name).filter(orm.User.name.in_(names))} if names else set()
        html = await self.render_template("ds-authorize.html", sign_ups=infos, hub_usernames=hub_users,
                                          ask_email=self.authenticator.ask_email_on_signup)
        self.finish(html)


def handlers() -> list[tuple[str, type]]:
    """Routes relative to the hub prefix; they take precedence over NativeAuthenticator's and JupyterHub's."""
    return [
        (r"/api/users", DsUserListAPIHandler),
        (r"/api/users/([^/]+)", DsUserAPIHandler),
        (r"/api/admin/credentials", CredentialsAPIHandler),
        (r"/api/ds/signups", SignupsAPIHandler),
        (r"/api/ds/signups/([^/]+)", SignupAPIHandler),
        (r"/signup", DsSignUpHandler),
        (r"/discard/([^/]*)", DsDiscardHandler),
        (r"/authorize", DsAuthorizationAreaHandler),
    ]
