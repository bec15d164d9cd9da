"""Pure parts of accounts: password settings and generation, the once-only credential store, the rename
listener on a real (in-memory) JupyterHub database, configure's authenticator rule, our templates."""

from __future__ import annotations

import os
from types import SimpleNamespace

import jupyterhub
import pytest
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PrefixLoader
from jupyterhub import orm
from jupyterhub._data import DATA_FILES_PATH
from nativeauthenticator.orm import UserInfo
from traitlets.config import Config

from hub_extensions import accounts, configure
from hub_extensions.accounts import CredentialStore, NotOwner
from hub_extensions.accounts_handlers import parse_usernames
from hub_extensions.config import TEMPLATES_DIR
from hub_extensions.settings import AccountsSettings, SettingsError, load_settings

# ---------------------------------------------------------------- settings and generated passwords


def test_defaults_are_upstreams():
    s = load_settings({}).accounts
    assert (s.first_admin, s.allow_admin_signup, s.force_password_change) == ("admin", False, True)
    assert (s.password_words, s.password_delimiter, s.password_min_word_length, s.password_max_word_length) == (
        4, "-", 4, 6)


def test_generated_password_follows_the_settings():
    s = AccountsSettings(password_words=5, password_delimiter=".", password_min_word_length=5,
                         password_max_word_length=7)
    words = accounts.wordlist(s)
    accounts.check_password_settings(s)
    passwords = {accounts.generate_password(s, words) for _ in range(20)}
    assert len(passwords) == 20
    for p in passwords:
        parts = p.split(".")
        assert len(parts) == 5 and all(5 <= len(w) <= 7 for w in parts), p


@pytest.mark.parametrize(("changes", "key", "why"), [
    ({"password_min_word_length": 7, "password_max_word_length": 5}, "passwordMinWordLength", "at most"),
    ({"password_words": 8, "password_max_word_length": 9, "password_delimiter": "---"}, "passwordWords",
     "bcrypt takes at most 72"),
    ({"password_words": 3, "password_min_word_length": 3, "password_max_word_length": 3}, "passwordWords",
     "expected at least 40"),
])
def test_unsafe_password_settings_are_refused_naming_the_key(changes, key, why):
    s = AccountsSettings(**changes)
    with pytest.raises(SettingsError, match=rf"^jupyterhub\.custom\.ds\.accounts\.{key}: .*{why}"):
        accounts.check_password_settings(s)


def test_hash_is_bcrypt_bytes_nativeauthenticator_accepts():
    hashed = accounts.hash_password("storm-apple-ocean-mild")
    assert isinstance(hashed, bytes)
    info = UserInfo(username="x", password=hashed)
    assert info.is_valid_password("storm-apple-ocean-mild") and not info.is_valid_password("other")


# ---------------------------------------------------------------- credential store


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_credentials_are_handed_out_once_to_their_owner():
    store = CredentialStore(clock=Clock())
    store.put("a", "user:admin", "pw-a")
    store.put("b", "user:admin", "pw-b")
    assert store.take(["a", "b", "a", "zz"], "user:admin") == [
        {"username": "a", "password": "pw-a"}, {"username": "b", "password": "pw-b"}]
    assert store.take(["a", "b"], "user:admin") == []


def test_credentials_of_another_owner_are_refused_and_not_consumed():
    store = CredentialStore(clock=Clock())
    store.put("a", "user:admin", "pw-a")
    store.put("b", "user:other", "pw-b")
    with pytest.raises(NotOwner) as info:
        store.take(["a", "b"], "user:admin")
    assert info.value.usernames == ["b"]
    assert store.take(["a"], "user:admin") == [{"username": "a", "password": "pw-a"}]
    with pytest.raises(NotOwner):  # a service is not the user of the same name
        store.take(["b"], "service:other")
    assert store.take(["b"], "user:other") == [{"username": "b", "password": "pw-b"}]


def test_credentials_expire_after_five_minutes():
    clock = Clock()
    store = CredentialStore(clock=clock)
    store.put("a", "user:admin", "pw-a")
    clock.now += 299
    store.put("b", "user:admin", "pw-b")
    clock.now += 1
    assert store.take(["a", "b"], "user:admin") == [{"username": "b", "password": "pw-b"}]


def test_forget_and_rename():
    store = CredentialStore(clock=Clock())
    store.put("a", "user:admin", "pw-a")
    store.put("b", "user:admin", "pw-b")
    store.forget("a")
    store.rename("b", "c")
    assert store.take(["a", "b", "c"], "user:admin") == [{"username": "c", "password": "pw-b"}]


@pytest.mark.parametrize("body", [None, [], "x", {}, {"usernames": []}, {"usernames": "a"}, {"usernames": [1]},
                                  {"usernames": [""]}, {"usernames": ["a"] * 1001}])
def test_malformed_credential_requests(body):
    with pytest.raises(ValueError):
        parse_usernames(body)


def test_wellformed_credential_request():
    assert parse_usernames({"usernames": ["a", "b"]}) == ["a", "b"]


# ---------------------------------------------------------------- rename listener on a real database


@pytest.fixture
def db():
    accounts.listen_for_renames()
    session = orm.new_session_factory("sqlite://")()
    yield session
    session.close()


def test_rename_moves_the_credential_in_the_same_transaction(db):
    user = orm.User(name="old")
    db.add(user)
    db.add(UserInfo(username="old", password=b"h", is_authorized=True))
    db.commit()
    user.name = "new"
    db.flush()
    assert [i.username for i in db.query(UserInfo)] == ["new"]
    db.rollback()  # the rename fails: the credential stays with the old name
    assert [i.username for i in db.query(UserInfo)] == ["old"]
    user.name = "new"
    db.commit()
    assert [i.username for i in db.query(UserInfo)] == ["new"]


def test_rename_onto_a_pending_signup_replaces_it(db):
    user = orm.User(name="old")
    db.add(user)
    db.add_all([UserInfo(username="old", password=b"h1", is_authorized=True),
                UserInfo(username="new", password=b"h2", is_authorized=False)])
    db.commit()
    user.name = "new"
    db.commit()
    assert [(i.username, i.password) for i in db.query(UserInfo)] == [("new", b"h1")]


def test_creating_users_touches_no_credential(db):
    db.add(UserInfo(username="someone", password=b"h", is_authorized=False))
    db.commit()
    db.add(orm.User(name="fresh"))
    db.commit()
    assert [i.username for i in db.query(UserInfo)] == ["someone"]


# ---------------------------------------------------------------- configure


@pytest.mark.parametrize("name", ["native", "nativeauthenticator.NativeAuthenticator"])
def test_configure_swaps_nativeauthenticator_for_ours(name):
    c = Config()
    c.JupyterHub.authenticator_class = name
    c.Authenticator.admin_users = ["ops"]
    configure(c, {"gpu": {"mode": 0}, "accounts": {"firstAdmin": "root"}})
    assert c.JupyterHub.authenticator_class is accounts.DsNativeAuthenticator
    assert c.Authenticator.admin_users == {"ops", "root"}
    assert c.DsNativeAuthenticator.ds_accounts.first_admin == "root"


def test_configure_leaves_other_authenticators_alone():
    c = Config()
    c.JupyterHub.authenticator_class = "dummy"
    configure(c, {"gpu": {"mode": 0}})
    assert c.JupyterHub.authenticator_class == "dummy"
    assert "admin_users" not in c.Authenticator


def test_configure_stops_on_unsafe_password_settings(capsys):
    c = Config()
    c.JupyterHub.authenticator_class = "native"
    with pytest.raises(SystemExit):
        configure(c, {"gpu": {"mode": 0}, "accounts": {"passwordMinWordLength": 8, "passwordMaxWordLength": 6}})
    assert "accounts.passwordMinWordLength" in capsys.readouterr().err


# ---------------------------------------------------------------- templates

STOCK = os.path.join(DATA_FILES_PATH, "templates")


def render(name: str, **extra) -> str:
    env = Environment(loader=ChoiceLoader([PrefixLoader({"templates": FileSystemLoader([STOCK])}, "/"),
                                           FileSystemLoader([TEMPLATES_DIR, STOCK])]), autoescape=True)
    return env.get_template(name).render(
        base_url="/hub/", prefix="/", static_url=lambda path, **kw: f"/hub/static/{path}", xsrf_token="t",
        login_url="/hub/login", logout_url="/hub/logout", server_version=jupyterhub.__version__,
        user=SimpleNamespace(name="al", json_escaped_name="al", spawner=SimpleNamespace(options_form=None)),
        **extra)


def test_authorize_page_hides_discard_for_hub_users_and_escapes_names():
    sign_ups = [SimpleNamespace(username=n, email="", has_2fa=False, is_authorized=False)
                for n in ("member", "x<b>y")]
    html = render("ds-authorize.html", sign_ups=sign_ups, hub_usernames={"member"}, ask_email=False,
                  parsed_scopes={"admin:users": True}, ds_accounts=True)
    assert "/hub/discard/member" not in html and "/hub/authorize/member" in html
    assert "/hub/discard/x%3Cb%3Ey" in html and "x&lt;b&gt;y" in html and "x<b>y" not in html


@pytest.mark.parametrize(("scopes", "accounts_on", "change", "authorize"), [
    ({"admin:users": True, "admin-ui": True}, True, True, True),
    ({"self": True}, True, True, False),
    ({"admin:users": True}, False, False, False),
])
def test_navbar_links(scopes, accounts_on, change, authorize):
    html = render("page.html", parsed_scopes=scopes, ds_accounts=accounts_on)
    assert ('href="/hub/change-password"' in html) is change
    assert ('href="/hub/authorize"' in html) is authorize
