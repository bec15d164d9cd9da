"""The idle timer on the home page: shown only when our culler runs and the server is up."""

from __future__ import annotations

import os

import pytest

from hub_extensions import static_api

from .test_ui_templates import render_home


def test_running_server_with_our_culler_shows_the_timer_and_extend_control():
    html = render_home("running", ds_culler_enabled=True)
    assert 'id="ds-session-timer"' in html and 'id="ds-extend-btn"' in html and 'id="ds-extend-hours"' in html
    assert f'<script src="/hub/ds-static/culler.js?v={static_api.asset_versions()["culler.js"]}"' in html
    assert 'id="restart-server-btn"' in html  # the storage tools are still there


@pytest.mark.parametrize(("state", "enabled"), [("running", False), ("stopped", True), ("starting", True)])
def test_no_timer_without_our_culler_or_a_running_server(state, enabled):
    assert "ds-session-timer" not in render_home(state, ds_culler_enabled=enabled)


def test_culler_js_is_served_from_ds_static():
    path = next(r[2]["path"] for r in static_api.handlers() if r[0] == r"/ds-static/(.*)")
    assert os.path.isfile(os.path.join(path, "culler.js"))
