"""Our home.html and admin.html rendered offline the way JupyterHub loads them, and the ds-static route.

The browser flows themselves are in tests/e2e/chart/test_ui_storage.py; these check the server-side choices
(which button for which server state, escaping, the footer) without a cluster.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import jupyterhub
import pytest
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PrefixLoader
from jupyterhub._data import DATA_FILES_PATH
from tornado import web
from traitlets.config import Config

from hub_extensions import __version__, configure, static_api
from hub_extensions.config import TEMPLATES_DIR

STOCK = os.path.join(DATA_FILES_PATH, "templates")
VOLUMES = [
    {"name": "home", "description": "Home", "size": "10Gi", "mount_path": "/home"},
    {"name": "cache", "description": "Cache", "size": "5Gi", "mount_path": "/home/lab/.cache"},
]


def env() -> Environment:
    return Environment(loader=ChoiceLoader([PrefixLoader({"templates": FileSystemLoader([STOCK])}, "/"),
                                            FileSystemLoader([TEMPLATES_DIR, STOCK])]), autoescape=True)


def common(**extra):
    return {
        "base_url": "/hub/", "prefix": "/", "static_url": lambda path, **kw: f"/hub/static/{path}",
        "parsed_scopes": set(), "xsrf_token": "t", "login_url": "/hub/login", "logout_url": "/hub/logout",
        "ds_version": __version__, "server_version": jupyterhub.__version__, "ds_volumes": VOLUMES,
        "ds_assets": static_api.asset_versions(),
        "ds_logo_url": "", "ds_favicon_url": "", "ds_favicon_file": "",
        "user": SimpleNamespace(name='al"<b>', json_escaped_name="al", spawner=SimpleNamespace(options_form=None)),
        **extra,
    }


def render_home(state: str, **extra) -> str:
    server = SimpleNamespace(active=state != "stopped", ready=state == "running",
                             pending={"starting": "spawn", "stopping": "stop"}.get(state))
    return env().get_template("home.html").render(
        **common(default_server=server, url="/hub/spawn/al", allow_named_servers=False, **extra))


def test_stopped_server_offers_manage_volumes_only():
    html = render_home("stopped")
    assert 'id="manage-volumes-btn"' in html and 'id="manage-volumes-modal"' in html
    assert 'id="confirm-reset-btn"' in html and "This action cannot be undone" in html
    assert "restart-server" not in html
    assert 'id="start"' in html  # JupyterHub's own page is still there (extended, not copied)
    assert f'<script src="/hub/ds-static/storage.js?v={static_api.asset_versions()["storage.js"]}"' in html


def test_running_server_offers_restart_only():
    html = render_home("running")
    assert 'id="restart-server-btn"' in html and 'id="confirm-restart-btn"' in html
    assert "new pod" in html and "/home/lab/.cache" in html
    assert "manage-volumes" not in html


@pytest.mark.parametrize("state", ["starting", "stopping"])
def test_pending_server_offers_neither(state):
    html = render_home(state)
    assert "manage-volumes-btn" not in html and "restart-server-btn" not in html
    assert f"Your server is {state}." in html


def test_no_manage_volumes_without_managed_storage():
    assert "manage-volumes" not in render_home("stopped", ds_volumes=[])


def test_username_is_escaped_and_footer_shows_versions():
    html = render_home("stopped")
    assert 'data-ds-user="al&#34;&lt;b&gt;"' in html and 'al"<b>' not in html
    assert f"jupyterhub-ds {__version__} | JupyterHub {jupyterhub.__version__}</div>" in html


def test_admin_page_keeps_react_app_and_adds_volume_tool():
    html = env().get_template("admin.html").render(**common(api_page_limit=50, server_version="5.5.0 abc"))
    assert 'id="react-admin-hook"' in html and "js/admin-react.js" in html
    assert 'id="admin-manage-volumes-btn"' in html and 'id="admin-confirm-reset-btn"' in html
    assert html.count("version_footer") == 1 and f"jupyterhub-ds {__version__} | JupyterHub 5.5.0 abc" in html
    html = env().get_template("admin.html").render(**common(api_page_limit=50, ds_volumes=[]))
    assert "admin-manage-volumes" not in html and 'id="react-admin-hook"' in html


def test_static_route_serves_the_ui_files():
    routes = [r for r in static_api.handlers() if r[0] == r"/ds-static/(.*)"]
    assert len(routes) == 1 and routes[0][1] is web.StaticFileHandler
    path = routes[0][2]["path"]
    for name in ("storage.js", "storage.css"):
        assert os.path.isfile(os.path.join(path, name))


def test_configure_passes_server_version_to_every_page():
    c = Config()
    configure(c, {"gpu": {"mode": 0}})
    template_vars = c.JupyterHub.template_vars.get_value({})
    assert template_vars["server_version"] == jupyterhub.__version__
    assert template_vars["ds_version"] == __version__
    assert [v["name"] for v in template_vars["ds_volumes"]] == ["home", "workspace", "cache"]


def test_a_filtered_grant_gets_no_links_to_hub_wide_pages():
    """Authorize Users, Activity and Settings need an unfiltered grant (they answer 403 otherwise); Notifications
    works filtered (it reaches the covered users)."""
    from jupyterhub.scopes import Scope

    group = {"group": {"course-x"}}
    filtered = render_home("stopped", ds_accounts=True, ds_activity_enabled=True, parsed_scopes={
        "admin:users": group, "custom:ds-activity:read": group, "custom:ds-notifications:send": group})
    assert 'id="ds-nav-notifications"' in filtered
    for link in ("ds-nav-authorize", "ds-nav-activity", "ds-nav-settings"):
        assert f'id="{link}"' not in filtered
    admin = render_home("stopped", ds_accounts=True, ds_activity_enabled=True,
                        parsed_scopes={"admin:users": Scope.ALL})
    for link in ("ds-nav-authorize", "ds-nav-activity", "ds-nav-settings", "ds-nav-notifications"):
        assert f'id="{link}"' in admin
    reader = render_home("stopped", ds_activity_enabled=True, parsed_scopes={"custom:ds-activity:read": Scope.ALL})
    assert 'id="ds-nav-activity"' in reader and 'id="ds-nav-settings"' not in reader


def test_the_env_vars_editor_is_on_the_home_page_only_when_turned_on():
    html = render_home("stopped", ds_user_env_enabled=True)
    assert 'id="ds-env"' in html and 'data-ds-user="al&#34;&lt;b&gt;"' in html
    assert f'ds-static/env-vars.js?v={static_api.asset_versions()["env-vars.js"]}' in html
    assert "ds-env" not in render_home("stopped", ds_user_env_enabled=False)
