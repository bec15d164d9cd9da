"""The settings page's rows: every custom.ds key once, defaults, upstream names, secrets masked."""

from __future__ import annotations

import dataclasses
import os

from hub_extensions import settings_page
from hub_extensions.settings import Settings, load_settings


def leaf_keys(schema: dict, prefix: str = "") -> list[str]:
    keys = []
    for name, sub in schema["properties"].items():
        if sub.get("type") == "object" and "properties" in sub:
            keys += leaf_keys(sub, f"{prefix}{name}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys


def test_one_row_per_leaf_of_the_chart_schema_in_order():
    from hub_extensions.settings import Settings, dataclass_schema

    rows = settings_page.rows(Settings())
    assert [r.key for r in rows] == leaf_keys(dataclass_schema(Settings))
    assert not any(r.changed for r in rows)


def test_values_defaults_descriptions_and_upstream_names():
    settings = load_settings({"culler": {"enabled": True, "timeoutSeconds": 600}, "gpu": {"mode": 0}})
    rows = {r.key: r for r in settings_page.rows(settings)}
    timeout = rows["culler.timeoutSeconds"]
    assert (timeout.value, timeout.default, timeout.changed) == ("600", "3600", True)
    assert timeout.upstream == "JUPYTERHUB_IDLE_CULLER_TIMEOUT"
    assert timeout.description.startswith("A server idle this long")
    assert rows["gpu.mode"].upstream == "JUPYTERHUB_GPU_ENABLED"
    assert rows["branding.favicon"].upstream == "JUPYTERHUB_FAVICON_URI"
    assert rows["accounts.firstAdmin"].upstream == "JUPYTERHUB_ADMIN"
    assert rows["storage.onUserDelete"].upstream is None  # no upstream equivalent
    assert rows["storage.volumes"].value.startswith('[{"name": "home"')  # lists stay one row, as JSON
    assert rows["culler.enabled"].section == "culler"


def test_secret_like_keys_are_judged_by_their_last_word():
    assert settings_page.secret_key("oauth.clientSecret")
    assert settings_page.secret_key("api_token")
    assert settings_page.secret_key("s3.accessKey")
    assert not settings_page.secret_key("accounts.passwordWords")
    assert not settings_page.secret_key("accounts.passwordDelimiter")
    assert not settings_page.secret_key("accounts.firstAdmin")


def test_credentials_inside_urls_are_masked():
    mask = settings_page.MASK
    assert settings_page.mask_url("https://u:hunter2@cdn.example.org/x.png") == \
        f"https://u:{mask}@cdn.example.org/x.png"
    masked = settings_page.mask_url("https://s3.example/i.svg?X-Amz-Signature=abc&size=32&token=t")
    assert "abc" not in masked and "token=t" not in masked and "size=32" in masked
    assert settings_page.mask_value({"clientSecret": "s", "url": "http://a:b@h/"}) == \
        {"clientSecret": mask, "url": f"http://a:{mask}@h/"}


def test_a_secret_field_is_masked_whole_and_a_signed_url_partly():
    @dataclasses.dataclass(frozen=True)
    class Extra:
        api_token: str = dataclasses.field(default="", metadata={"doc": "A token."})
        icon: str = dataclasses.field(default="", metadata={"doc": "An icon."})

    rows = {r.key: r for r in settings_page.rows(Extra(api_token="s3cr3t", icon="https://x/i?sig=zz&w=1"))}
    assert rows["apiToken"].value == settings_page.MASK and rows["apiToken"].masked
    assert rows["apiToken"].default == ""  # an empty secret shows as empty
    assert "zz" not in rows["icon"].value and "w=1" in rows["icon"].value


def test_rows_never_read_the_environment(monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_IDLE_CULLER_TIMEOUT", "12345")
    monkeypatch.setenv("SOME_SECRET", "leak-me")
    text = repr(settings_page.rows(Settings()))
    assert "12345" not in text and "leak-me" not in text
    assert os.environ["SOME_SECRET"] == "leak-me"


def test_sections_keep_the_structure_order_and_versions_name_the_chart():
    names = [name for name, _ in settings_page.sections(settings_page.rows(Settings()))]
    assert names[:3] == ["storage", "groups", "gpu"] and "culler" in names and len(set(names)) == len(names)
    versions = settings_page.versions("4.4.0")
    assert versions["Zero to JupyterHub chart"] == "4.4.0"
    assert set(versions) == {"jupyterhub-ds", "JupyterHub", "KubeSpawner", "Zero to JupyterHub chart"}
    assert settings_page.versions(None)["Zero to JupyterHub chart"] == "not deployed by the Helm chart"
