"""Branding: URL or file resolution, lab icon URLs, the file handler, and our page.html."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PrefixLoader
from jupyterhub._data import DATA_FILES_PATH
from tornado import httpclient, httpserver, netutil, web
from traitlets.config import Config

from hub_extensions import branding, branding_api, configure
from hub_extensions.config import TEMPLATES_DIR
from hub_extensions.settings import BrandingSettings, SettingsError

from .spawner_fixtures import as_json, fake_hub, fake_kubeconfig, fake_user, make_spawner, notebook, spawn_manifest

__all__ = ["fake_kubeconfig"]

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16
ICO = b"\0\0\1\0" + b"\0" * 16
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"/>'


@pytest.fixture
def files_dir(tmp_path):
    (tmp_path / "logo.png").write_bytes(PNG)
    (tmp_path / "favicon.ico").write_bytes(ICO)
    (tmp_path / "lab-main.svg").write_bytes(SVG)
    return str(tmp_path)


def test_classify_url_file_empty_and_rejects_paths():
    assert branding.classify("logo", "") is None
    assert branding.classify("logo", "https://example.org/l.svg") == branding.Asset(url="https://example.org/l.svg")
    assert branding.classify("logo", "HTTP://x/l.png").url
    assert branding.classify("favicon", "favicon.ico") == branding.Asset(file="favicon.ico")
    for bad in ("/etc/passwd", "../secret", "..", "a/b.png", "file:///x.png", "javascript:alert(1)"):
        with pytest.raises(SettingsError, match=r"jupyterhub\.custom\.ds\.branding\.labMainIcon: expected"):
            branding.classify("lab_main_icon", bad)


def test_resolve_reads_each_file_once_with_its_content_type(files_dir):
    reads = []

    def read(path):
        reads.append(os.path.basename(path))
        with open(path, "rb") as f:
            return f.read()

    settings = BrandingSettings(logo="logo.png", favicon="favicon.ico", lab_main_icon="lab-main.svg",
                                lab_splash_icon="lab-main.svg", files_dir=files_dir)
    result = branding.resolve(settings, read=read)
    assert sorted(reads) == ["favicon.ico", "lab-main.svg", "logo.png"]
    assert result.files["logo.png"] == branding.BrandingFile(PNG, "image/png")
    assert result.files["lab-main.svg"].content_type == "image/svg+xml"
    assert result.files["favicon.ico"].content_type in ("image/vnd.microsoft.icon", "image/x-icon")
    assert result.logo_file() == os.path.join(files_dir, "logo.png")


def test_a_missing_file_names_the_setting(files_dir):
    with pytest.raises(SettingsError, match=r"branding\.favicon: file 'nope\.ico' is not in .*brandingFiles"):
        branding.resolve(BrandingSettings(favicon="nope.ico", files_dir=files_dir))


def test_template_vars_for_urls_files_and_stock(files_dir):
    assert branding.resolve(BrandingSettings(files_dir=files_dir)).template_vars() == {
        "ds_logo_url": "", "ds_favicon_url": "", "ds_favicon_file": ""}
    urls = branding.resolve(BrandingSettings(logo="https://cdn/l.svg", favicon="https://cdn/f.ico"))
    assert urls.template_vars() == {"ds_logo_url": "https://cdn/l.svg", "ds_favicon_url": "https://cdn/f.ico",
                                    "ds_favicon_file": ""}
    assert urls.logo_file() is None
    files = branding.resolve(BrandingSettings(logo="logo.png", favicon="favicon.ico", files_dir=files_dir))
    assert files.template_vars() == {"ds_logo_url": "", "ds_favicon_url": "",
                                     "ds_favicon_file": "ds-branding/favicon.ico"}


def test_lab_icon_urls_are_fully_qualified():
    settings = BrandingSettings(lab_main_icon="https://cdn.example.org/main.svg", lab_splash_icon="splash.svg")
    env = branding.Branding(settings, branding.assets(settings)).lab_icon_env("http://hub:8081/hub/")
    assert env == {"JUPYTERLAB_MAIN_ICON_URI": "https://cdn.example.org/main.svg",
                   "JUPYTERLAB_SPLASH_ICON_URI": "http://hub:8081/hub/ds-branding/splash.svg"}
    assert branding.Branding(BrandingSettings()).lab_icon_env("http://hub:8081/hub/") == {}


def test_hub_prefix_from_the_hub_or_the_setting():
    z2jh = SimpleNamespace(url="http://hub:8081/jh/hub/", base_url="/jh/hub/")
    assert branding.hub_prefix(None, z2jh) == "http://hub:8081/jh/hub/"
    assert branding.hub_prefix("https://hub.example.org/", z2jh) == "https://hub.example.org/jh/hub/"
    assert branding.hub_prefix("https://hub.example.org", z2jh) == "https://hub.example.org/jh/hub/"


async def test_lab_icon_env_reaches_the_pod(fake_kubeconfig, files_dir):
    c = Config()
    configure(c, {"gpu": {"mode": 0}, "branding": {"labMainIcon": "lab-main.svg", "filesDir": files_dir,
                                                   "labSplashIcon": "https://cdn.example.org/s.svg"}})
    hub = fake_hub("http://127.0.0.1:8081/base/hub/", "/base/hub/")
    pod = as_json(await spawn_manifest(make_spawner(c, fake_user(), hub)))
    env = {e["name"]: e.get("value") for e in notebook(pod)["env"]}
    assert env["JUPYTERLAB_MAIN_ICON_URI"] == "http://127.0.0.1:8081/base/hub/ds-branding/lab-main.svg"
    assert env["JUPYTERLAB_SPLASH_ICON_URI"] == "https://cdn.example.org/s.svg"


def test_configure_wires_logo_file_handler_and_template_vars(files_dir):
    c = Config()
    configure(c, {"gpu": {"mode": 0}, "branding": {"logo": "logo.png", "favicon": "favicon.ico",
                                                   "filesDir": files_dir}})
    assert c.JupyterHub.logo_file == os.path.join(files_dir, "logo.png")
    assert c.JupyterHub.template_vars.get_value({})["ds_favicon_file"] == "ds-branding/favicon.ico"
    routes = [h for h in c.JupyterHub.extra_handlers.get_value([]) if h[1] is branding_api.BrandingFileHandler]
    assert routes and set(routes[0][2]["files"]) == {"logo.png", "favicon.ico"}
    assert c.JupyterHub.template_paths.get_value([])[0] == TEMPLATES_DIR


def test_configure_stops_on_a_missing_branding_file(tmp_path, capsys):
    with pytest.raises(SystemExit):
        configure(Config(), {"branding": {"logo": "logo.png", "filesDir": str(tmp_path)}})
    assert "branding.logo: file 'logo.png'" in capsys.readouterr().err


async def test_handler_serves_files_from_memory_with_safe_headers(files_dir):
    brand = branding.resolve(BrandingSettings(favicon="favicon.ico", lab_main_icon="lab-main.svg",
                                              files_dir=files_dir))
    os.remove(os.path.join(files_dir, "favicon.ico"))  # served from memory: the disk is not read again
    app = web.Application([(rf"/hub{pattern}", handler, kwargs) for pattern, handler, kwargs in
                           branding_api.handlers(brand)])
    sockets = netutil.bind_sockets(0, "127.0.0.1")
    server = httpserver.HTTPServer(app)
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    client = httpclient.AsyncHTTPClient()
    try:
        r = await client.fetch(f"http://127.0.0.1:{port}/hub/ds-branding/favicon.ico")
        assert r.body == ICO
        r = await client.fetch(f"http://127.0.0.1:{port}/hub/ds-branding/lab-main.svg")
        assert r.body == SVG
        assert r.headers["Content-Type"] == "image/svg+xml"
        assert "sandbox" in r.headers["Content-Security-Policy"]
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        for missing in ("logo.png", "..%2Fsecret", "nope"):
            r = await client.fetch(f"http://127.0.0.1:{port}/hub/ds-branding/{missing}", raise_error=False)
            assert r.code == 404
    finally:
        server.stop()


def render_page(**template_vars: str) -> str:
    """Render our page.html the way JupyterHub loads templates (ours first, stock under templates/)."""
    stock = os.path.join(DATA_FILES_PATH, "templates")
    env = Environment(loader=ChoiceLoader([PrefixLoader({"templates": FileSystemLoader([stock])}, "/"),
                                           FileSystemLoader([TEMPLATES_DIR, stock])]), autoescape=True)
    return env.get_template("page.html").render(
        base_url="/hub/", prefix="/", static_url=lambda path, **kw: f"/hub/static/{path}", parsed_scopes=set(),
        **{"ds_logo_url": "", "ds_favicon_url": "", "ds_favicon_file": "", **template_vars})


def test_page_html_stock_when_unset():
    html = render_page()
    assert '<link rel="icon" href="/hub/static/favicon.ico"' in html
    assert "src='/hub/logo'" in html


def test_page_html_with_urls_and_files():
    html = render_page(ds_logo_url="https://cdn.example.org/l.svg", ds_favicon_url="https://cdn.example.org/f.ico")
    assert '<link rel="icon" href="https://cdn.example.org/f.ico">' in html
    assert '<img src="https://cdn.example.org/l.svg"' in html
    assert "/hub/static/favicon.ico" not in html and "src='/hub/logo'" not in html
    html = render_page(ds_favicon_file="ds-branding/favicon.ico")
    assert '<link rel="icon" href="/hub/ds-branding/favicon.ico">' in html
    assert "src='/hub/logo'" in html  # a logo file is JupyterHub's own logo_file, served at /hub/logo
    html = render_page(ds_logo_url='https://x/"><script>')
    assert "<script>" not in html.split("jpy-logo")[0].split("navbar-brand")[-1]
