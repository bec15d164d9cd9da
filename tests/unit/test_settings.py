"""The settings structure: defaults, one-line errors naming the key, and the generated schema."""

from __future__ import annotations

import pytest
from traitlets.config import Config

import hub_extensions
from hub_extensions.settings import Settings, SettingsError, load_settings
from hub_extensions.settings_schema import dataclass_schema, to_values


def test_defaults_are_the_upstream_layout():
    s = load_settings(None)
    assert [(v.name, v.mount_path) for v in s.storage.volumes] == [
        ("home", "/home"), ("workspace", "/home/lab/workspace"), ("cache", "/home/lab/.cache")]
    assert s.storage.shared.mount_path == "/mnt/shared" and s.storage.on_user_delete == "retain"
    assert s.gpu.mode == 2 and s.groups.docker_sock.group == "docker-sock"
    assert load_settings(to_values(s)) == s


@pytest.mark.parametrize(("raw", "message"), [
    ({"gpu": {"mode": 3}}, "jupyterhub.custom.ds.gpu.mode: expected one of 0, 1, 2, got 3"),
    ({"gpu": {"count": "2"}}, "jupyterhub.custom.ds.gpu.count: expected an integer, got \"2\""),
    ({"gpu": {"count": True}}, "jupyterhub.custom.ds.gpu.count: expected an integer, got true"),
    ({"bogus": 1}, "jupyterhub.custom.ds.bogus: unknown setting"),
    ({"storage": {"volumes": [{"name": "Home", "mountPath": "/x"}]}},
     "jupyterhub.custom.ds.storage.volumes[0].name: expected a string matching"),
    ({"storage": {"volumes": [{"name": "a", "mountPath": "/x", "size": "ten"}]}},
     "jupyterhub.custom.ds.storage.volumes[0].size"),
    ({"storage": {"volumes": [{"name": "a", "mountPath": "/x"}, {"name": "a", "mountPath": "/y"}]}},
     "volumes[1].name: expected a unique name"),
    ({"storage": {"volumes": [{"name": "a", "mountPath": "/mnt/shared"}]}}, "expected unique mount paths"),
    ({"storage": {"onUserDelete": "keep"}}, "onUserDelete: expected one of \"retain\", \"delete\""),
    ({"storage": {"volumes": [{"name": "a", "mountPath": "/x", "accessModes": ["RWX"]}]}},
     "accessModes[0]: expected one of"),
    ({"groups": {"dockerSock": {"nodeSelector": {"a": 1}}}},
     "jupyterhub.custom.ds.groups.dockerSock.nodeSelector.a: expected a string, got 1"),
    ({"groups": {"dockerSock": {"nodeSelector": ["a"]}}},
     "jupyterhub.custom.ds.groups.dockerSock.nodeSelector: expected a mapping, got [\"a\"]"),
    ({"groups": {"dockerSock": {"gid": "999"}}},
     "jupyterhub.custom.ds.groups.dockerSock.gid: expected an integer or null, got \"999\""),
    ({"groups": {"dockerSock": {"gid": -1}}},
     "jupyterhub.custom.ds.groups.dockerSock.gid: expected an integer from 0 to 4294967294, got -1"),
    ({"storage": {"volumes": [{"name": "ok", "mountPath": "/x"}, {"name": "docker-sock", "mountPath": "/y"}]}},
     "jupyterhub.custom.ds.storage.volumes[1].name: expected a name other than \"shared\", \"docker-sock\" and not "
     "starting with \"policy-\" (reserved: a volume's pod volume is ds-<name>, and ds-shared, ds-docker-sock, "
     "ds-policy-* are taken), got \"docker-sock\""),
    ({"storage": {"volumes": [{"name": "shared", "mountPath": "/x"}]}},
     "jupyterhub.custom.ds.storage.volumes[0].name: expected a name other than"),
    ({"storage": {"volumes": [{"name": "policy-mount-0", "mountPath": "/x"}]}},  # a group policy's mount's name
     "jupyterhub.custom.ds.storage.volumes[0].name: expected a name other than"),
    ({"hubUrl": 5}, "jupyterhub.custom.ds.hubUrl: expected a string or null, got 5"),
    ({"storage": {"volumes": [{"name": "a", "mountPath": "/x", "accessModes": []}]}},
     "jupyterhub.custom.ds.storage.volumes[0].accessModes: expected at least 1 item(s), got []"),
    ("not a mapping", "jupyterhub.custom.ds: expected a mapping"),
    ({"storage": {"volumes": [{"mountPath": "/x"}]}}, "jupyterhub.custom.ds.storage.volumes[0].name: required"),
    ({"storage": {"volumes": [{"name": "a"}]}}, "jupyterhub.custom.ds.storage.volumes[0].mountPath: required"),
    ({"gpu": {"group": ""}}, "jupyterhub.custom.ds.gpu.group: expected a non-empty string, got \"\""),
    ({"storage": {"shared": {"existingClaim": "Bad Name"}}},
     "storage.shared.existingClaim: expected a string matching"),
    # admin scripts run in every user's server: never from a volume every user can write
    ({"lab": {"auxScriptsPath": "/mnt/shared/lab/scripts"}},
     "jupyterhub.custom.ds.lab.auxScriptsPath: expected a path users cannot write (e.g. a read-only ConfigMap "
     "mount), got '/mnt/shared/lab/scripts' on the user-writable volume at /mnt/shared"),
    ({"lab": {"auxMenuPath": "/home/lab/workspace/"}}, "lab.auxMenuPath: expected a path users cannot write"),
    ({"lab": {"auxMenuPath": "menus"}}, "lab.auxMenuPath: expected a string matching"),
])
def test_bad_settings_name_the_key(raw, message):
    with pytest.raises(SettingsError) as err:
        load_settings(raw)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_the_hub_validates_with_the_charts_schema(monkeypatch):
    """One contract: the hub asks jsonschema with the generated schema Helm applies, not its own checks."""
    import jsonschema

    from hub_extensions import settings as settings_module

    seen = []
    real = jsonschema.Draft7Validator

    def spy(schema):
        seen.append(schema)
        return real(schema)

    settings_module._validator.cache_clear()
    monkeypatch.setattr(jsonschema, "Draft7Validator", spy)
    try:
        with pytest.raises(SettingsError):
            load_settings({"gpu": {"mode": 3}})
        assert seen == [dataclass_schema(Settings)]
    finally:
        settings_module._validator.cache_clear()


def test_docker_gid_default_and_null():
    assert load_settings(None).groups.docker_sock.gid == 999
    assert load_settings({"groups": {"dockerSock": {"gid": None}}}).groups.docker_sock.gid is None
    assert load_settings({"groups": {"dockerSock": {"gid": 2375}}}).groups.docker_sock.gid == 2375


def test_integral_floats_become_ints():
    assert load_settings({"gpu": {"count": 2.0}}).gpu.count == 2
    assert isinstance(load_settings({"gpu": {"count": 2.0}}).gpu.count, int)


def test_configure_stops_the_hub_with_one_line(capsys):
    with pytest.raises(SystemExit) as exited:
        hub_extensions.configure(Config(), {"gpu": {"mode": 7}})
    expected = "jupyterhub-ds: invalid setting: jupyterhub.custom.ds.gpu.mode: expected one of 0, 1, 2, got 7"
    assert str(exited.value) == expected
    assert capsys.readouterr().err.strip() == str(exited.value)


def test_configure_refuses_z2jh_dynamic_storage_alongside_ours():
    c = Config()
    c.KubeSpawner.storage_pvc_ensure = True
    with pytest.raises(SystemExit, match=r"jupyterhub.singleuser.storage.type: expected none"):
        hub_extensions.configure(c, {})


def test_schema_is_strict_and_documented():
    schema = dataclass_schema(Settings)
    assert schema["additionalProperties"] is False
    gpu = schema["properties"]["gpu"]
    assert gpu["additionalProperties"] is False and gpu["properties"]["mode"]["enum"] == [0, 1, 2]

    def walk(node):
        for key, sub in node.get("properties", {}).items():
            assert sub.get("description"), key
            walk(sub)
        if "items" in node:
            walk(node["items"])

    walk(schema)


def test_aux_paths_outside_user_volumes_are_accepted():
    s = load_settings({"lab": {"auxScriptsPath": "/etc/jupyterhub-ds/lab/scripts", "auxMenuPath": "/mnt/sharedx"}})
    assert s.lab.aux_scripts_path == "/etc/jupyterhub-ds/lab/scripts"
    # with the shared volume off, its mount path is no longer user-writable
    load_settings({"storage": {"shared": {"enabled": False}}, "lab": {"auxScriptsPath": "/mnt/shared/scripts"}})
