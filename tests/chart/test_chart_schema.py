"""values.schema.json: Helm rejects what Z2JH and our settings reject; the committed schema is generated."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from hub_extensions.settings import Settings, load_settings
from hub_extensions.settings_schema import to_values

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_VALUES = REPO_ROOT / "values.example.yaml"
SCHEMA = REPO_ROOT / "chart" / "values.schema.json"


def test_unknown_key_under_jupyterhub_hub_is_rejected_by_z2jh_schema(renderer):
    err = renderer.error("jupyterhub.hub.myKey=1")
    # helm 3.19: "jupyterhub:\n- at '/hub': additional properties 'myKey' not allowed"
    assert "additional properties 'myKey' not allowed" in err
    assert "at '/hub'" in err


def test_unknown_top_level_z2jh_key_is_rejected(renderer):
    err = renderer.error("jupyterhub.myFeature.x=1")
    assert "'myFeature' not allowed" in err


def test_unknown_key_under_custom_ds_is_rejected(renderer):
    err = renderer.error("jupyterhub.custom.ds.gpu.bogus=1")
    # helm 3.19: "jupyterhub-ds:\n- at '/jupyterhub/custom/ds/gpu': additional properties 'bogus' not allowed"
    assert "at '/jupyterhub/custom/ds/gpu'" in err
    assert "additional properties 'bogus' not allowed" in err


def test_bad_gpu_mode_is_rejected(renderer):
    err = renderer.error("jupyterhub.custom.ds.gpu.mode=3")
    # helm 3.19: "- at '/jupyterhub/custom/ds/gpu/mode': value must be one of 0, 1, 2"
    assert "at '/jupyterhub/custom/ds/gpu/mode'" in err
    assert "value must be one of 0, 1, 2" in err


@pytest.mark.parametrize(("set_values", "where"), [
    (("jupyterhub.custom.ds.storage.shared.size=lots",), "/jupyterhub/custom/ds/storage/shared/size"),
    (("jupyterhub.custom.ds.storage.onUserDelete=shred",), "/jupyterhub/custom/ds/storage/onUserDelete"),
    (("jupyterhub.custom.ds.storage.volumes[0].name=Home",), "/jupyterhub/custom/ds/storage/volumes/0/name"),
    (("jupyterhub.custom.ds.gpu.count=0",), "/jupyterhub/custom/ds/gpu/count"),
    (("jupyterhub.custom.ds.hubUrl=1",), "/jupyterhub/custom/ds/hubUrl"),
    (("jupyterhub.custom.ds.storage.volumes[0].name=shared",), "/jupyterhub/custom/ds/storage/volumes/0/name"),
    (("jupyterhub.custom.ds.groups.dockerSock.gid=-1",), "/jupyterhub/custom/ds/groups/dockerSock/gid"),
], ids=["quantity", "enum", "dns-label", "minimum", "type", "reserved-volume-name", "docker-gid"])
def test_bad_settings_values_are_rejected(renderer, set_values, where):
    assert f"at '{where}'" in renderer.error(*set_values)


@pytest.mark.parametrize(("set_values", "needle"), [
    (("bogus=1",), "additional properties 'bogus' not allowed"),
    (("rbac.enabled=true",), "additional properties 'enabled' not allowed"),
    (("podSecurity.labels=true",), "additional properties 'labels' not allowed"),
    (("jupyterhub.custom.brandingFiles.logo\\.png=not*base64",), "at '/jupyterhub/custom/brandingFiles/logo.png'"),
    (("jupyterhub.custom.brandingFiles.a/b=AAAB",), "invalid propertyName 'a/b'"),
], ids=["root", "rbac", "podSecurity", "branding-base64", "branding-file-name"])
def test_parent_only_keys_are_strict(renderer, set_values, needle):
    assert needle in renderer.error(*set_values)


def test_open_parts_stay_open(renderer):
    """Z2JH leaves custom.* and global open; so does our schema (except custom.ds)."""
    renderer.documents("jupyterhub.custom.otherTool.x=1", "global.anything=1",
                       "jupyterhub.hub.config.MyAuthenticator.flag=true")


def test_committed_schema_custom_ds_is_generated_from_settings(chart_module):
    committed = json.loads(SCHEMA.read_text())
    ds = committed["properties"]["jupyterhub"]["properties"]["custom"]["properties"]["ds"]
    generated = json.loads(subprocess.run([sys.executable, "-m", "hub_extensions.settings"], cwd=REPO_ROOT,
                                          capture_output=True, text=True, check=True).stdout)
    assert ds == generated, "chart/values.schema.json is stale: run `python -m ci.chart sync-schema`"
    assert chart_module.sync_schema(check=True) is False, "run `python -m ci.chart sync-schema`"


def test_schema_shape(chart_module):
    schema = json.loads(SCHEMA.read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {"global", "rbac", "podSecurity", "jupyterhub"}
    jupyterhub = schema["properties"]["jupyterhub"]
    assert jupyterhub["additionalProperties"] is True
    assert jupyterhub["properties"]["custom"]["additionalProperties"] is True
    assert jupyterhub["properties"]["custom"]["properties"]["ds"]["additionalProperties"] is False
    assert SCHEMA.read_text() == chart_module.schema_text(schema)


def test_values_yaml_keys_are_in_the_schema():
    """Every parent-only key of values.yaml is declared (root is additionalProperties: false)."""
    values = yaml.safe_load((REPO_ROOT / "chart" / "values.yaml").read_text())
    props = json.loads(SCHEMA.read_text())["properties"]
    for key, sub in values.items():
        assert key in props
        if key != "jupyterhub":
            assert set(sub) <= set(props[key]["properties"])


def _leaves(value: Any, path: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_leaves(v, f"{path}.{k}" if path else k))
        return out
    if isinstance(value, list) and value and isinstance(value[0], dict):
        out = {}
        for i, v in enumerate(value):
            out.update(_leaves(v, f"{path}[{i}]"))
        return out
    return {path: value}


def test_example_settings_load_with_load_settings():
    ds = yaml.safe_load(EXAMPLE_VALUES.read_text())["jupyterhub"]["custom"]["ds"]
    settings = load_settings(ds)
    assert [v.mount_path for v in settings.storage.volumes] == ["/home", "/home/lab/workspace", "/home/lab/.cache"]
    assert [v.name for v in settings.storage.volumes] == ["home", "workspace", "cache"]
    assert settings.storage.shared.mount_path == "/mnt/shared"
    assert settings.gpu.mode == 2


def test_example_lists_every_setting_at_its_default():
    """values.example.yaml documents every setting, each at its default (stock branding: works offline),
    except our culler, which the example switches on (in place of Z2JH's)."""
    ds = yaml.safe_load(EXAMPLE_VALUES.read_text())["jupyterhub"]["custom"]["ds"]
    example, defaults = _leaves(ds), _leaves(to_values(Settings()))
    assert set(example) == set(defaults)
    differing = {k for k in example if example[k] != defaults[k]}
    assert differing == {"culler.enabled"}


def test_real_dependency_matches_chart_yaml(chart_dir, dependency_source):
    dep = next(d for d in yaml.safe_load((chart_dir / "Chart.yaml").read_text())["dependencies"]
               if d["name"] == "jupyterhub")
    assert dep == {"name": "jupyterhub", "version": "4.4.0", "repository": "https://hub.jupyter.org/helm-chart/"}
    assert dependency_source == "real"
    assert (chart_dir / "charts" / f"jupyterhub-{dep['version']}.tgz").exists()
