"""Our scopes in the JupyterHub config (custom scopes, the user role's grants) and the versioned UI assets.

The scopes themselves are proven against a real hub in tests/e2e/chart/test_scopes.py.
"""

from __future__ import annotations

import os
import re
import shutil

import pytest
from jupyterhub import scopes as jh_scopes
from traitlets.config import Config

from hub_extensions import api, configure, scopes


def test_custom_scopes_are_defined_for_the_decorators():
    for scope in (scopes.READ, scopes.RESET, scopes.NOTIFY, scopes.ACTIVITY_READ, scopes.HEALTH_READ):
        assert scope in jh_scopes.scope_definitions
    # reset implies read: a role granting reset can see what it resets
    assert jh_scopes._expand_scope(scopes.RESET) >= {scopes.READ}
    assert jh_scopes._expand_scope(scopes.ACTIVITY_ADMIN) >= {scopes.ACTIVITY_READ}


def test_configure_registers_scopes_and_grants_them_to_the_user_role():
    c = Config()
    configure(c, {"gpu": {"mode": 0}})
    assert set(c.JupyterHub.custom_scopes) == {scopes.READ, scopes.RESET, scopes.NOTIFY, scopes.ACTIVITY_READ,
                                               scopes.ACTIVITY_ADMIN, scopes.HEALTH_READ}
    assert all(d["description"] for d in c.JupyterHub.custom_scopes.values())
    (user,) = [r for r in c.JupyterHub.load_roles if r["name"] == "user"]
    assert user["scopes"] == ["self", "custom:ds-volumes:read!user", "custom:ds-volumes:reset!user"]
    assert "users" not in user and "groups" not in user  # membership stays JupyterHub's default (everyone)
    # JupyterHub accepts the identical redefinition it will make from c.JupyterHub.custom_scopes
    jh_scopes.define_custom_scopes(dict(c.JupyterHub.custom_scopes))


def test_configured_roles_are_merged_not_replaced():
    c = Config()
    c.JupyterHub.load_roles = [
        {"name": "user", "scopes": ["self", "read:hub"]},
        {"name": "instructor", "scopes": ["servers!group=course"], "users": ["ann"]},
    ]
    c.JupyterHub.custom_scopes = {"custom:other:thing": {"description": "theirs"}}
    scopes.register(c)
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert [r["name"] for r in c.JupyterHub.load_roles] == ["user", "instructor"]  # one user role, no duplicate
    assert roles["user"]["scopes"] == ["self", "read:hub", *scopes.USER_ROLE_SCOPES]
    assert roles["instructor"] == {"name": "instructor", "scopes": ["servers!group=course"], "users": ["ann"]}
    assert set(c.JupyterHub.custom_scopes) == {"custom:other:thing", scopes.READ, scopes.RESET, scopes.NOTIFY,
                                               scopes.ACTIVITY_READ, scopes.ACTIVITY_ADMIN, scopes.HEALTH_READ}
    scopes.register(c)  # idempotent
    assert next(r for r in c.JupyterHub.load_roles if r["name"] == "user")["scopes"] == roles["user"]["scopes"]


def test_roles_appended_before_configure_are_kept():
    c = Config()
    c.JupyterHub.load_roles.append({"name": "user", "description": "theirs"})  # a LazyConfigValue
    scopes.register(c)
    assert c.JupyterHub.load_roles == [{"name": "user", "description": "theirs",
                                        "scopes": ["self", *scopes.USER_ROLE_SCOPES]}]


@pytest.mark.parametrize(("method", "expected"), [
    (api.ManageVolumesHandler.get, {scopes.READ, scopes.ADMIN}),
    (api.ManageVolumesHandler.delete, {scopes.RESET, scopes.ADMIN}),
    (api.AdoptableVolumesHandler.get, {scopes.ADMIN}),
    (api.AdoptVolumesHandler.post, {scopes.ADMIN}),
    (api.RestartServerHandler.post, {"servers"}),
])
def test_handlers_check_the_right_scopes(method, expected):
    """``needs_scope`` keeps its scopes in the wrapper's closure; no `servers` for data, no data scope for restart."""
    cells = [c.cell_contents for c in method.__closure__ or ()]
    (found,) = [c for c in cells if isinstance(c, tuple) and c and all(isinstance(s, str) for s in c)]
    assert set(found) == expected


def test_asset_urls_carry_a_content_hash(tmp_path, monkeypatch):
    versions = api.asset_versions()
    assert {"storage.css", "storage.js", "accounts.js"} <= set(versions)
    assert all(re.fullmatch(r"[0-9a-f]{16}", v) for v in versions.values())
    # a changed file gets a new URL (the old one may be cached for ten years)
    shutil.copytree(api.STATIC_DIR, tmp_path / "static")
    monkeypatch.setattr(api, "STATIC_DIR", str(tmp_path / "static"))
    assert api.asset_versions() == versions
    with open(os.path.join(api.STATIC_DIR, "storage.js"), "a") as f:
        f.write("\n// changed\n")
    changed = api.asset_versions()
    assert changed["storage.js"] != versions["storage.js"] and changed["storage.css"] == versions["storage.css"]


def test_configure_hands_the_hashes_to_the_templates():
    c = Config()
    configure(c, {"gpu": {"mode": 0}})
    assert c.JupyterHub.template_vars.get_value({})["ds_assets"] == api.asset_versions()
