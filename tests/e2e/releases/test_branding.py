"""Branding through the installed chart: the rendered pages, the served files, and the lab icon URLs in the pod.

The files reach the hub as a site gives them: ``custom.brandingFiles`` (the chart's branding ConfigMap, mounted at
``branding.filesDir``). The HTML the hub sends is inspected, and headless Chromium shows that the logo and favicon
really load. Tests run in file order: the file-branded release first, then upgrades to URL branding and to a
missing file.
"""

from __future__ import annotations

import base64
import re
import struct
import zlib

import pytest
import requests

from ci.dev import devenv

from ..hubclient import HubClient, admin_client, new_user
from ..spawnwatch import env_of, stop_quietly


def png(width: int, height: int) -> bytes:
    """A real (decodable) red PNG, so a browser can render it."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\0" + b"\xff\0\0" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


PNG = png(24, 12)
ICO = b"\0\0\1\0\1\0" + bytes(range(32))
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8"/></svg>'
CDN = "https://cdn.example.org"


# custom.brandingFiles: file name -> base64 content, as `--set-file` or an inline values file gives them
FILES = {"values": {"custom": {"brandingFiles": {
    name: base64.b64encode(content).decode()
    for name, content in (("logo.png", PNG), ("favicon.ico", ICO), ("lab-main.svg", SVG))}}}}


@pytest.fixture(scope="module")
def file_hub(release):
    """Everything from files except the splash icon."""
    return release.install({"storage": {"enabled": False}, "branding": {
        "logo": "logo.png", "favicon": "favicon.ico", "labMainIcon": "lab-main.svg",
        "labSplashIcon": f"{CDN}/splash.svg"}}, **FILES)


def icon_links(html: str) -> list[str]:
    return re.findall(r'<link rel="icon" href="([^"]+)"', html)


def logo_srcs(html: str) -> list[str]:
    block = html.split('id="jupyterhub-logo"', 1)[1].split("</span>", 1)[0]
    return re.findall(r"<img src=['\"]([^'\"]+)['\"]", block)


@pytest.fixture(scope="module")
def file_admin(file_hub) -> HubClient:
    return admin_client(file_hub.url)


def test_login_and_home_pages_show_file_favicon_and_logo(file_hub, file_admin):
    html = requests.get(f"{file_hub.url}/hub/login", timeout=10).text
    assert icon_links(html) == ["/hub/ds-branding/favicon.ico"]
    assert logo_srcs(html) == ["/hub/logo"]

    home = file_admin.get("/hub/home")
    assert home.status_code == 200
    assert icon_links(home.text) == ["/hub/ds-branding/favicon.ico"]
    assert logo_srcs(home.text) == ["/hub/logo"]


def test_hub_serves_the_files(file_hub):
    r = requests.get(f"{file_hub.url}/hub/logo", timeout=10)
    assert r.status_code == 200 and r.content == PNG
    r = requests.get(f"{file_hub.url}/hub/ds-branding/favicon.ico", timeout=10)
    assert r.status_code == 200 and r.content == ICO
    r = requests.get(f"{file_hub.url}/hub/ds-branding/lab-main.svg", timeout=10)
    assert r.content == SVG
    assert r.headers["Content-Type"] == "image/svg+xml"
    assert "sandbox" in r.headers["Content-Security-Policy"]
    assert requests.get(f"{file_hub.url}/hub/ds-branding/secret.txt", timeout=10).status_code == 404


def test_lab_icons_are_fully_qualified_hub_urls_in_the_pod(file_hub, file_admin, kube, username):
    user = new_user(file_hub.url, file_admin, username)
    user.start_server()
    try:
        env = env_of(kube.user_pod(username))
        # the hub's connect URL (Z2JH: http://hub:8081), as user pods reach the hub
        main = env["JUPYTERLAB_MAIN_ICON_URI"]
        assert main == "http://hub:8081/hub/ds-branding/lab-main.svg"
        assert env["JUPYTERLAB_SPLASH_ICON_URI"] == f"{CDN}/splash.svg"
        # what the lab server does with it: download the icon from the hub (through the hub Service)
        hub_service = devenv.cluster_ip_url(kube.kubeconfig, kube.namespace, "hub")
        assert requests.get(main.replace("http://hub:8081", hub_service), timeout=10).content == SVG
    finally:
        stop_quietly(user)
        kube.wait_user_pod_gone(username)


@pytest.mark.browser
def test_browser_renders_logo_and_favicon(file_hub, new_page):
    page = new_page()
    page.goto(f"{file_hub.url}/hub/login")
    logo = page.locator("#jupyterhub-logo img")
    logo.wait_for()
    page.wait_for_function("document.querySelector('#jupyterhub-logo img').complete")
    assert logo.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [24, 12]
    favicon = page.evaluate("""async () => {
        const href = document.querySelector('link[rel=icon]').href;
        const r = await fetch(href);
        return [new URL(href).pathname, r.status, (await r.arrayBuffer()).byteLength];
    }""")
    assert favicon[0] == "/hub/ds-branding/favicon.ico" and favicon[1] == 200 and favicon[2] > 0


def test_url_branding_and_an_explicit_hub_url(release, kube, username):
    """An upgrade of the release to URL branding: the hub restarts with it."""
    hub = release.install({"storage": {"enabled": False}, "hubUrl": "http://hub.example.org:8081",
                           "branding": {"logo": f"{CDN}/logo.svg", "favicon": f"{CDN}/favicon.ico",
                                        "labMainIcon": "lab-main.svg"}}, **FILES)
    html = requests.get(f"{hub.url}/hub/login", timeout=10).text
    assert icon_links(html) == [f"{CDN}/favicon.ico"]
    assert logo_srcs(html) == [f"{CDN}/logo.svg"]

    user = new_user(hub.url, admin_client(hub.url), username)
    user.start_server()
    try:
        env = env_of(kube.user_pod(username))
        assert env["JUPYTERLAB_MAIN_ICON_URI"] == "http://hub.example.org:8081/hub/ds-branding/lab-main.svg"
        assert "JUPYTERLAB_SPLASH_ICON_URI" not in env
    finally:
        stop_quietly(user)
        kube.wait_user_pod_gone(username)


def test_a_missing_branding_file_stops_the_hub_with_the_key(release):
    """Runs last: an upgrade naming a file that brandingFiles lacks leaves the hub crashing, its log naming the key."""
    release.install({"branding": {"logo": "logo.png"}}, wait=False)
    release.wait_log("jupyterhub.custom.ds.branding.logo: file 'logo.png' is not in", timeout=120)
