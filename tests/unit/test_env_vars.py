"""Per-user environment variables (hub_extensions.env_vars): upstream's rules and codes, the Secret round trip,
the pod reference (never a value in the pod spec) and the precedence a group policy's env has over them."""

from __future__ import annotations

import base64

import pytest
from kubernetes_asyncio.client import V1Container, V1ObjectMeta, V1Pod, V1PodSpec

from hub_extensions import env_vars, group_policies
from hub_extensions.settings import Settings
from hub_extensions.settings import load_settings as parse
from hub_extensions.spawner import apply_pod_policy

PLATFORM = group_policies.platform_env(Settings())


def body(*items: dict) -> dict:
    return {"env_vars": list(items)}


def refused(payload: object) -> env_vars.EnvVarsError:
    with pytest.raises(env_vars.EnvVarsError) as e:
        env_vars.validate(payload, PLATFORM)
    return e.value


def test_a_set_is_kept_in_order_with_blank_rows_dropped_and_null_values_empty():
    got = env_vars.validate(body({"name": "OPENAI_API_KEY", "value": "sk-1", "description": "my key"},
                                 {"name": "  ", "value": "x"}, {"name": None},
                                 {"name": "EMPTY", "value": None}), PLATFORM)
    assert got == [env_vars.EnvVar("OPENAI_API_KEY", "sk-1", "my key"), env_vars.EnvVar("EMPTY", "", "")]


@pytest.mark.parametrize(("payload", "code", "rejected"), [
    ({}, "invalid_env_vars", []),
    ({"env_vars": "A=1"}, "invalid_env_vars", []),
    (body({"name": "A", "value": 1}), "invalid_env_vars", ["A"]),
    (body({"name": "1A", "value": ""}), "invalid_env_var_names", ["1A"]),
    (body({"name": "A-B", "value": ""}, {"name": "A B", "value": ""}), "invalid_env_var_names", ["A-B", "A B"]),
    (body({"name": "JUPYTERHUB_API_TOKEN", "value": "stolen"}), "reserved_env_var_names", ["JUPYTERHUB_API_TOKEN"]),
    (body({"name": "JPY_API_TOKEN", "value": ""}), "reserved_env_var_names", ["JPY_API_TOKEN"]),
    (body({"name": "GRANT_SUDO", "value": "yes"}), "reserved_env_var_names", ["GRANT_SUDO"]),
    (body({"name": "NB_UID", "value": "0"}), "reserved_env_var_names", ["NB_UID"]),
    (body({"name": "CUDA_VISIBLE_DEVICES", "value": "0,1"}), "reserved_env_var_names", ["CUDA_VISIBLE_DEVICES"]),
    (body({"name": "MEM_LIMIT", "value": "1"}), "reserved_env_var_names", ["MEM_LIMIT"]),
    (body({"name": "A", "value": ""}, {"name": "A", "value": "2"}), "duplicate_env_var_names", ["A"]),
    (body(*[{"name": f"V{i}", "value": ""} for i in range(101)]), "too_many", []),
    (body({"name": "BIG", "value": "x" * 16384}), "too_large", []),
    (body({"name": "D", "value": "", "description": "d" * 1025}), "too_large", ["D"]),
    (body(*[{"name": "", "value": ""} for _ in range(1001)]), "too_many", []),
    (body({"name": "N" * 254, "value": ""}), "invalid_env_var_names", ["N" * 254]),
    (body({"name": "S", "value": "\ud800"}), "invalid_env_vars", []),
])
def test_refused_sets_name_the_rule_and_the_names(payload, code, rejected):
    e = refused(payload)
    assert (e.code, e.rejected) == (code, rejected)


def test_every_variable_the_spawner_sets_itself_is_reserved():
    assert PLATFORM  # the lab contract's variables
    for name in PLATFORM:
        assert refused(body({"name": name, "value": "x"})).code == "reserved_env_var_names"


def test_the_secret_round_trips_values_descriptions_and_order():
    variables = [env_vars.EnvVar("ZED", "1", "last letter"), env_vars.EnvVar("ALPHA", "naïve ✓", "")]
    secret = env_vars.secret_manifest("u7-0a1b2c3d", variables)
    assert secret["metadata"]["name"] == "jupyterhub-ds-env-u7-0a1b2c3d"
    assert secret["metadata"]["labels"]["jupyterhub-ds/owner"] == "u7-0a1b2c3d"
    assert base64.b64decode(secret["data"]["ALPHA"]).decode() == "naïve ✓"
    assert "naïve" not in str(secret["metadata"])  # values are in data only
    assert env_vars.from_secret(secret) == variables
    assert env_vars.from_secret(None) == []


def test_get_withholds_values_from_a_caller_who_may_not_edit():
    variables = [env_vars.EnvVar("KEY", "secret", "d")]
    assert env_vars.answer(variables, PLATFORM, True, editable=False)["env_vars"] == []
    shown = env_vars.answer(variables, PLATFORM, True, editable=True)
    assert shown["env_vars"] == [{"name": "KEY", "value": "secret", "description": "d"}]
    assert "GRANT_SUDO" in shown["reserved_names"] and "JUPYTERHUB_" in shown["reserved_prefixes"]


def pod() -> V1Pod:
    return V1Pod(metadata=V1ObjectMeta(name="jupyter-ann"),
                 spec=V1PodSpec(containers=[V1Container(name="notebook", image="x", env=[])]))


def test_the_pod_references_the_secret_and_a_group_policy_env_wins():
    settings = parse({"storage": {"enabled": False}, "gpu": {"mode": 0},
                      "groupPolicies": [{"group": "ml", "env": {"TEAM": "ml"}}]})
    p = pod()
    apply_pod_policy(p, settings, owner="u7-0a1b2c3d", groups={"ml"}, gpu_answer=None, icons={})
    notebook = p.spec.containers[0]
    assert notebook.env_from == [{"secretRef": {"name": "jupyterhub-ds-env-u7-0a1b2c3d", "optional": True}}]
    # Kubernetes gives `env` precedence over `envFrom`: the policy's TEAM beats a user's TEAM
    assert {"name": "TEAM", "value": "ml"} in notebook.env


def test_turned_off_the_pod_gets_no_reference():
    settings = parse({"storage": {"enabled": False}, "gpu": {"mode": 0}, "userEnv": {"enabled": False}})
    p = pod()
    apply_pod_policy(p, settings, owner="u7-0a1b2c3d", groups=set(), gpu_answer=None, icons={})
    assert not p.spec.containers[0].env_from


def test_a_huge_set_of_duplicates_is_refused_by_count_first():
    """The rules are linear: the row cap comes before any per-row work (a PUT must not stall the hub)."""
    e = refused(body(*[{"name": "A", "value": ""}] * 200_000))
    assert e.code == "too_many"

