"""Sign-up routes of :class:`~hub_extensions.accounts.DsNativeAuthenticator` (NativeAuthenticator's sign-ups).

JupyterHub puts the authenticator's handlers before its own, so these win for the same paths:

- ``/signup``: refuses admin names with a clear message (NativeAuthenticator would pre-authorize them); at most
  ``signupsPerMinute`` attempts per client address (429), at most ``maxPendingSignups`` waiting (503); bcrypt off
  the event loop.
- ``GET /api/ds/signups`` (``offset``, ``limit``, ``state``), ``POST /api/ds/signups/<name>``
  ``{"authorized": bool}`` and ``DELETE /api/ds/signups/<name>`` (discard): NativeAuthenticator's sign-ups as
  JSON, an idempotent authorize, a discard refused for hub users (deleting a user must go through JupyterHub,
  which applies the storage policy). ``/authorize``: our page, which calls these with XSRF.
- ``GET /authorize/<name>`` and ``GET /discard/<name>``: NativeAuthenticator changed state on a GET (a link an
  attacker makes an admin open); here they change nothing (405).

Sign-ups are not hub users, so a grant filtered to a group cannot cover them: every sign-up route needs unfiltered
``admin:users``. Names are normalized as the authenticator does before any check.
"""

from __future__ import annotations

import asyncio
import html
import math
from typing import Any
from urllib.parse import urlencode

import requests
from jupyterhub import orm
from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.handlers import BaseHandler
from nativeauthenticator.handlers import AuthorizationAreaHandler, SignUpHandler
from nativeauthenticator.orm import UserInfo
from tornado import web

from . import scopes
from .accounts import SignupRefused
from .client_address import request_address
from .handler_base import Utf8JsonBody, needs_unfiltered_scope
from .passwords import SIGNUPS_BUSY

RECAPTCHA_VERIFY_URL = "https://www.google.com/recaptcha/api/siteverify"
PAGE_LIMIT = 200  # default and largest page of sign-ups
SIGNUP_STATES = ("pending", "authorized")


def signup_json(info: Any, hub_users: set[str]) -> dict[str, Any]:
    return {"username": info.username, "email": info.email or None, "authorized": bool(info.is_authorized),
            "hub_user": info.username in hub_users}


MAX_OFFSET = 2**62  # what SQLite and PostgreSQL take as an OFFSET (a larger one is a database error: a 500)


def parse_signups_query(state: str | None, offset: str | None, limit: str | None) -> tuple[str | None, int, int]:
    """``state``/``offset``/``limit`` query arguments -> (state or None, offset, limit); ValueError with the reason."""
    if state not in (None, "", *SIGNUP_STATES):
        raise ValueError(f"state: expected one of {', '.join(SIGNUP_STATES)}, got {state!r}")
    try:
        first = int(offset) if offset not in (None, "") else 0
        size = int(limit) if limit not in (None, "") else PAGE_LIMIT
    except ValueError:
        raise ValueError("offset and limit: expected integers") from None
    if not 0 <= first <= MAX_OFFSET:
        raise ValueError(f"offset: expected 0 to {MAX_OFFSET}, got {first}")
    if not 1 <= size <= PAGE_LIMIT:
        raise ValueError(f"limit: expected 1 to {PAGE_LIMIT}, got {size}")
    return state or None, first, size


def signups_page(db: Any, state: str | None, offset: int, limit: int) -> tuple[list[Any], int, set[str]]:
    """One page of sign-ups by name, how many match in all, and which of the page's names are hub users."""
    query = db.query(UserInfo)
    if state == "pending":
        query = query.filter(UserInfo.is_authorized.isnot(True))
    elif state == "authorized":
        query = query.filter(UserInfo.is_authorized.is_(True))
    total = query.count()
    infos = query.order_by(UserInfo.username, UserInfo.id).offset(offset).limit(limit).all()
    names = [i.username for i in infos]
    hub_users = {n for (n,) in db.query(orm.User.name).filter(orm.User.name.in_(names))} if names else set()
    return infos, total, hub_users


def pagination(offset: int, limit: int, total: int, url: str, state: str | None) -> dict[str, Any]:
    """JupyterHub's ``_pagination`` shape: ``next`` is None on the last page."""
    nxt = None
    if offset + limit < total:
        query = {"offset": offset + limit, "limit": limit, **({"state": state} if state else {})}
        nxt = {"offset": offset + limit, "limit": limit, "url": f"{url}?{urlencode(query)}"}
    return {"offset": offset, "limit": limit, "total": total, "next": nxt}


def page_query(handler: Any) -> tuple[str | None, int, int]:
    try:
        return parse_signups_query(handler.get_argument("state", None), handler.get_argument("offset", None),
                                   handler.get_argument("limit", None))
    except ValueError as e:
        raise web.HTTPError(400, str(e)) from None


def parse_authorized(body: Any) -> bool:
    """``{"authorized": true|false}`` (an empty body means true) -> the flag; ValueError otherwise."""
    if body is None:
        return True
    if not isinstance(body, dict) or not isinstance(body.get("authorized", True), bool):
        raise ValueError('Expected a JSON object {"authorized": true|false}')
    return body.get("authorized", True)


class SignupsAPIHandler(APIHandler):
    """``GET /api/ds/signups?offset=&limit=&state=pending|authorized``:
    ``{"signups": [{"username", "email", "authorized", "hub_user"}], "_pagination": {offset, limit, total, next}}``."""

    @needs_unfiltered_scope(scopes.ADMIN)
    async def get(self) -> None:
        state, offset, limit = page_query(self)
        infos, total, hub_users = signups_page(self.db, state, offset, limit)
        self.write({"signups": [signup_json(i, hub_users) for i in infos],
                    "_pagination": pagination(offset, limit, total, f"{self.hub.base_url}api/ds/signups", state)})


class SignupAPIHandler(Utf8JsonBody, APIHandler):
    """``POST /api/ds/signups/<name>`` ``{"authorized": bool}``: set (not toggle) a sign-up's authorization.
    ``DELETE``: discard a sign-up that is not authorized and never became a hub user (204)."""

    def signup(self, user_name: str) -> tuple[str, Any]:
        """The normalized name and its sign-up (404 without one): ``BOB`` is ``bob``, as at login."""
        name = self.authenticator.normalize_username(user_name)
        info = self.db.query(UserInfo).filter(UserInfo.username == name).first()
        if info is None:
            raise web.HTTPError(404, f"No sign-up named {name}")
        return name, info

    @needs_unfiltered_scope(scopes.ADMIN)
    async def post(self, user_name: str) -> None:
        try:
            authorized = parse_authorized(self.get_json_body())
        except web.HTTPError:
            raise web.HTTPError(400, 'Expected a JSON object {"authorized": true|false}') from None
        except ValueError as e:
            raise web.HTTPError(400, str(e)) from None
        name, info = self.signup(user_name)
        user = self.find_user(name)
        if authorized and not info.is_authorized and user is not None and user.last_activity is None:
            # the hub made this user (config, an admin) and nobody has logged in as them: whoever signed up under
            # the name is not known to be them
            raise web.HTTPError(409, f"{name} is a hub user who has never logged in, and this sign-up was made by "
                                     f"whoever chose the name: set {name}'s password at "
                                     f"{self.hub.base_url}change-password/{name} (it replaces the sign-up) instead "
                                     "of authorizing it.")
        if bool(info.is_authorized) != authorized:
            info.is_authorized = authorized
            self.db.commit()
            self.log.info("Sign-up %s %s by %s", name, "authorized" if authorized else "unauthorized",
                          self.current_user.name)
        hub_user = self.find_user(name) is not None
        self.write(signup_json(info, {name} if hub_user else set()))

    @needs_unfiltered_scope(scopes.ADMIN)
    async def delete(self, user_name: str) -> None:
        name, info = self.signup(user_name)
        if self.find_user(name) is not None:
            raise web.HTTPError(409, f"{name} is a hub user: delete the user from the admin page "
                                     "(Admin > Edit User > Delete User), which applies the storage policy, "
                                     "instead of discarding the sign-up.")
        if info.is_authorized:
            raise web.HTTPError(409, f"The sign-up {name} is authorized: unauthorize it before discarding it.")
        self.db.query(UserInfo).filter(UserInfo.username == name).delete()
        self.db.commit()
        self.authenticator.ds_credentials.forget(name)
        self.log.info("Sign-up %s discarded by %s", name, self.current_user.name)
        self.set_status(204)
        self.finish()


class DsSignUpHandler(SignUpHandler):
    """NativeAuthenticator's sign-up page and messages, with our ``create_user`` (bcrypt off the event loop,
    awaited here), at most ``signupsPerMinute`` attempts per client address (429), and admin names, a password
    the policy refuses and a full queue of pending sign-ups refused with a message that says why."""

    async def post(self) -> None:
        auth = self.authenticator
        if not auth.enable_signup:
            raise web.HTTPError(404)
        limit = auth.ds_accounts.signups_per_minute
        wait = auth.ds_signup_attempts.take(request_address(self, auth.ds_accounts.forwarded_hops), limit)
        if wait:
            return self._turn_away(429, f"Too many sign-up attempts from your address (at most {limit} a minute): "
                                        f"try again in {math.ceil(wait)} seconds.", wait)
        if auth.signups_busy():  # before any query: a flood from many addresses ends here
            return self._turn_away(503, SIGNUPS_BUSY, 60)
        username = self.get_body_argument("username", "", strip=False)
        refused = auth.signup_refused(username)
        if refused is not None:
            return await self._answer(403, refused)
        password = self.get_body_argument("signup_password", "", strip=False)
        matches = password == self.get_body_argument("signup_password_confirmation", "", strip=False)
        human = await self._passed_recaptcha()
        taken = auth.user_exists(username)
        user = None
        if human and matches and not taken:
            try:
                user = await auth.create_user(username, password,
                                              email=self.get_body_argument("email", "", strip=False),
                                              has_2fa=bool(self.get_body_argument("2fa", "", strip=False)))
            except SignupRefused as e:
                if e.status == 503:
                    return self._turn_away(503, e.message, 60)
                return await self._answer(e.status, e.message)
        alert, message = self.get_result_message(user, human, taken, matches, username in auth.admin_users)
        await self._answer(200, message, alert, two_factor_auth_user=user.has_2fa if user else "",
                           two_factor_auth_value=user.otp_secret if user else "")

    async def _answer(self, status: int, message: str, alert: str = "alert-danger", **extra: Any) -> None:
        auth = self.authenticator
        html = await self.render_template(
            "signup.html", ask_email=auth.ask_email_on_signup, result_message=message, alert=alert,
            two_factor_auth=auth.allow_2fa, recaptcha_key=auth.recaptcha_key, tos=auth.tos, **extra)
        self.set_status(status)
        self.finish(html)

    def _turn_away(self, status: int, message: str, retry_after: float) -> None:
        """A refusal a flood gets many of: a short page, no template (rendering one would cost the event loop
        more than the rest of the refusal)."""
        self.set_status(status)
        self.set_header("Retry-After", str(math.ceil(retry_after)))
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(f"<!DOCTYPE html><title>{status} {self._reason}</title><p>{html.escape(message)}</p>"
                    f'<p><a href="{html.escape(self.hub.base_url)}signup">Back to the sign-up page</a></p>')

    async def _passed_recaptcha(self) -> bool:
        """True without reCAPTCHA; with it, Google's verdict, asked off the event loop."""
        auth = self.authenticator
        if not auth.recaptcha_key:
            return True
        response = self.get_body_argument("g-recaptcha-response", "", strip=True)
        if not response:
            return False

        def verify() -> bool:
            r = requests.post(RECAPTCHA_VERIFY_URL, data={"secret": auth.recaptcha_secret, "response": response},
                              timeout=10)
            return bool(r.json().get("success"))

        try:
            return await asyncio.get_running_loop().run_in_executor(None, verify)
        except (requests.RequestException, ValueError) as e:
            self.log.error("reCAPTCHA verification failed: %s", e)
            return False


class NoChangeOnGetHandler(BaseHandler):
    """NativeAuthenticator's ``GET /authorize/<name>`` (a toggle) and ``GET /discard/<name>``: any page an admin
    opens could link there. Here they change nothing; the Authorize Users page posts to the sign-ups API."""

    async def get(self, user_name: str) -> None:
        raise web.HTTPError(405, "This address changes nothing: authorize, unauthorize and discard sign-ups on "
                                 f"the Authorize Users page ({self.hub.base_url}authorize).")


class DsAuthorizationAreaHandler(AuthorizationAreaHandler):
    """The authorization page (our template), paged like the API; Discard only for sign-ups that are not hub
    users. Its buttons call the sign-ups API (POST/DELETE with XSRF) through ds-static/authorize.js."""

    @needs_unfiltered_scope(scopes.ADMIN)
    async def get(self) -> None:
        state, offset, limit = page_query(self)
        infos, total, hub_users = signups_page(self.db, state, offset, limit)
        html = await self.render_template(
            "ds-authorize.html", sign_ups=infos, hub_usernames=hub_users,
            ask_email=self.authenticator.ask_email_on_signup, state=state or "",
            page=pagination(offset, limit, total, f"{self.hub.base_url}authorize", state),
            prev_offset=max(offset - limit, 0) if offset else None)
        self.finish(html)


def handlers() -> list[tuple[str, type]]:
    """Routes relative to the hub prefix; they take precedence over NativeAuthenticator's and JupyterHub's."""
    return [
        (r"/api/ds/signups", SignupsAPIHandler),
        (r"/api/ds/signups/([^/]+)", SignupAPIHandler),
        (r"/signup", DsSignUpHandler),
        (r"/discard/([^/]*)", NoChangeOnGetHandler),
        (r"/authorize/([^/]*)", NoChangeOnGetHandler),
        (r"/authorize", DsAuthorizationAreaHandler),
    ]
