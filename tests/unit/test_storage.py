"""Storage: pure builders (naming, manifests, pod wiring, reports, request validation), and the reset and
adoption operations against a fake Kubernetes layer (``hub_extensions.k8s`` functions monkeypatched) for
the error paths a real API server will not produce on demand."""

from __future__ import annotations

import re

import aiohttp
import pytest
from kubernetes_asyncio.client import ApiException, V1Container, V1ObjectMeta, V1Pod, V1PodSpec, V1Volume, V1VolumeMount

from hub_extensions import k8s, objects, storage
from hub_extensions.settings import load_settings

DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def test_owner_keys_are_unique_per_account():
    keys = {storage.new_owner_key(12) for _ in range(100)}
    assert len(keys) == 100
    assert all(re.fullmatch(r"u12-[0-9a-f]{8}", k) for k in keys)


@pytest.mark.parametrize("username", ["alice", "Alice.Smith@example.com", "a_b", "x" * 200, "用户"])
def test_claim_manifest_is_valid_for_any_username(username):
    s = load_settings(None).storage
    owner = storage.new_owner_key(7)
    m = storage.claim_manifest(s.volumes[0], owner, username, {"app": "jupyterhub"})
    assert DNS1123.match(m["metadata"]["name"]) and len(m["metadata"]["name"]) <= 63
    assert m["metadata"]["annotations"]["hub.jupyter.org/username"] == username
    labels = m["metadata"]["labels"]
    assert labels["jupyterhub-ds/owner"] == owner and labels["jupyterhub-ds/volume"] == "home"
    assert labels["app.kubernetes.io/managed-by"] == "jupyterhub-ds" and labels["app"] == "jupyterhub"
    assert all(len(v) <= 63 for v in labels.values())
    assert m["spec"]["resources"]["requests"]["storage"] == "10Gi"
    assert "storageClassName" not in m["spec"]


def test_storage_class_is_passed_when_set():
    s = load_settings({"storage": {"volumes": [{"name": "home", "mountPath": "/h", "storageClass": ""}]}}).storage
    assert storage.claim_manifest(s.volumes[0], "u1-x", "a")["spec"]["storageClassName"] == ""


def _pod() -> V1Pod:
    return V1Pod(metadata=V1ObjectMeta(name="p"), spec=V1PodSpec(
        containers=[V1Container(name="notebook", volume_mounts=[V1VolumeMount(name="x", mount_path="/home")])],
        volumes=[V1Volume(name="x")]))


def test_pod_wiring_is_idempotent_and_replaces_conflicting_mounts():
    s = load_settings(None).storage
    volumes, mounts = storage.pod_volumes(s, "u1-abc")
    pod = objects.add_volumes(objects.add_volumes(_pod(), volumes, mounts), volumes, mounts)
    names = [v["name"] if isinstance(v, dict) else v.name for v in pod.spec.volumes]
    assert names == ["x", "ds-home", "ds-workspace", "ds-cache", "ds-shared"]
    paths = [m["mountPath"] if isinstance(m, dict) else m.mount_path for m in pod.spec.containers[0].volume_mounts]
    assert paths == ["/home", "/home/lab/workspace", "/home/lab/.cache", "/mnt/shared"]  # the old /home mount is gone
    assert volumes[-1]["persistentVolumeClaim"]["claimName"] == "jupyterhub-ds-shared"


def test_shared_volume_existing_claim_and_disabled():
    s = load_settings({"storage": {"shared": {"existingClaim": "nfs-home"}}}).storage
    assert storage.pod_volumes(s, "o")[0][-1]["persistentVolumeClaim"]["claimName"] == "nfs-home"
    s = load_settings({"storage": {"shared": {"enabled": False}}}).storage
    assert [v["name"] for v in storage.pod_volumes(s, "o")[0]] == ["ds-home", "ds-workspace", "ds-cache"]


def test_volume_report_covers_missing_bound_and_terminating():
    s = load_settings(None).storage
    claims = [
        {"metadata": {"name": "c-home", "labels": {"jupyterhub-ds/volume": "home"}},
         "spec": {"resources": {"requests": {"storage": "10Gi"}}},
         "status": {"phase": "Bound", "capacity": {"storage": "11Gi"}}},
        {"metadata": {"name": "c-cache", "labels": {"jupyterhub-ds/volume": "cache"},
                      "deletionTimestamp": "2026-01-01T00:00:00Z"},
         "spec": {"resources": {"requests": {"storage": "5Gi"}}}, "status": {"phase": "Bound"}},
    ]
    report = {r["volume"]: r for r in storage.volume_report(s, claims)}
    assert report["home"]["status"] == "Bound" and report["home"]["size"] == "11Gi"
    assert report["workspace"]["status"] == "Missing" and not report["workspace"]["exists"]
    assert report["cache"]["status"] == "Terminating"


@pytest.mark.parametrize(("body", "status", "text"), [
    (None, 400, "Expected a JSON object"),
    ([], 400, "Expected a JSON object"),
    ({"volumes": []}, 400, "No volumes specified"),
    ({"volumes": [1]}, 400, "No volumes specified"),
    ({"volumes": ["home", "shared"]}, 400, "Invalid volume types: shared"),
    ({"volumes": ["../home"]}, 400, "Invalid volume types: ../home"),
])
def test_reset_requests_are_validated(body, status, text):
    with pytest.raises(storage.StorageError) as err:
        storage.check_reset_request(load_settings(None).storage, body)
    assert err.value.status == status and text in err.value.message


def test_non_resettable_volumes_cannot_be_reset():
    s = load_settings({"storage": {"volumes": [{"name": "home", "mountPath": "/h", "resettable": False},
                                               {"name": "tmp", "mountPath": "/t"}]}}).storage
    assert storage.check_reset_request(s, {"volumes": ["tmp", "tmp"]}) == ["tmp"]
    with pytest.raises(storage.StorageError, match="Invalid volume types: home"):
        storage.check_reset_request(s, {"volumes": ["home"]})


def test_claims_record_owner_key_and_user_name():
    """What an admin needs to find and re-attach claims when the hub database is gone."""
    m = storage.claim_manifest(load_settings(None).storage.volumes[0], "u3-0a1b2c3d", "Alice.Smith@x",
                               {"jupyterhub-ds/owner": "forged", "hub.jupyter.org/username": "forged"})
    labels, annotations = m["metadata"]["labels"], m["metadata"]["annotations"]
    assert labels["jupyterhub-ds/owner"] == "u3-0a1b2c3d"  # extra labels cannot override ours
    assert labels["hub.jupyter.org/username"] != "forged" and annotations["hub.jupyter.org/username"] == "Alice.Smith@x"
    assert labels["app.kubernetes.io/managed-by"] == "jupyterhub-ds"


# ---------------------------------------------------------------- a fake Kubernetes layer


def claim(owner: str, volume: str, username: str = "alice", *, orphaned: bool = False,
          created: str = "2026-01-01T00:00:00Z", **annotations: str) -> dict:
    labels = {"app.kubernetes.io/managed-by": "jupyterhub-ds", "jupyterhub-ds/owner": owner,
              "jupyterhub-ds/volume": volume, "hub.jupyter.org/username": username}
    if orphaned:
        labels["jupyterhub-ds/orphaned"] = "true"
    return {"metadata": {"name": storage.claim_name(owner, volume), "labels": labels, "creationTimestamp": created,
                         "annotations": {"hub.jupyter.org/username": username, **annotations}},
            "spec": {"resources": {"requests": {"storage": "1Gi"}}}, "status": {"phase": "Bound"}}


class FakeK8s:
    """Claims in memory; ``fail`` maps an operation name to the exception it raises (once per call)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, claims: list[dict]):
        self.claims = {c["metadata"]["name"]: c for c in claims}
        self.fail: dict[str, BaseException] = {}
        self.deleted: list[str] = []
        self.patches: list[tuple[str, dict, dict]] = []
        for name in ("list_claims", "delete_claim", "wait_claims_gone", "patch_claim_metadata"):
            monkeypatch.setattr(k8s, name, getattr(self, name))

    def _maybe_fail(self, op: str, name: str = "") -> None:
        error = self.fail.get(f"{op}:{name}") or self.fail.get(op)
        if error is not None:
            raise error

    async def list_claims(self, namespace: str, selector: str) -> list[dict]:
        self._maybe_fail("list")
        wanted = dict(term.split("=", 1) for term in selector.split(","))
        return [c for c in self.claims.values()
                if all(c["metadata"]["labels"].get(k) == v for k, v in wanted.items())]

    async def delete_claim(self, namespace: str, name: str) -> bool:
        self._maybe_fail("delete", name)
        self.deleted.append(name)
        return self.claims.pop(name, None) is not None

    async def wait_claims_gone(self, namespace: str, selector: str, names: set[str], within: float) -> set[str]:
        self._maybe_fail("wait")
        return {n for n in names if f"stuck:{n}" in self.fail}

    async def patch_claim_metadata(self, namespace: str, name: str, labels: dict, annotations: dict | None = None):
        self._maybe_fail("patch", name)
        self.patches.append((name, labels, annotations or {}))
        meta = self.claims[name]["metadata"]
        for target, changes in ((meta["labels"], labels), (meta["annotations"], annotations or {})):
            for key, value in changes.items():
                if value is None:
                    target.pop(key, None)
                else:
                    target[key] = value


API_500 = ApiException(status=500, reason="Internal Server Error")
OWNER = "u1-aaaaaaaa"
SETTINGS = load_settings(None).storage


async def reset(fake: FakeK8s, volumes: list[str]) -> storage.ResetResult:
    return await storage.reset_claims("ns", SETTINGS, OWNER, volumes, 5)


async def test_reset_all_succeed(monkeypatch):
    fake = FakeK8s(monkeypatch, [claim(OWNER, "home"), claim(OWNER, "cache")])
    result = await reset(fake, ["cache", "home"])
    assert result.status == 200 and result.reset == ["cache", "home"] and result.failed == []
    body = result.as_json()
    assert body["message"] == "Successfully reset 2 volume(s)"
    assert [r["claim"] for r in body["results"]] == [storage.claim_name(OWNER, v) for v in ("cache", "home")]


async def test_reset_where_every_delete_failed_is_a_bad_gateway(monkeypatch):
    fake = FakeK8s(monkeypatch, [claim(OWNER, "home"), claim(OWNER, "cache")])
    fake.fail["delete"] = API_500
    result = await reset(fake, ["home", "cache"])
    assert result.status == 502  # was 500: the hub did nothing wrong, the API server refused
    assert [(r["volume"], r["result"]) for r in result.results] == [("home", "api error"), ("cache", "api error")]
    assert "API error 500 Internal Server Error" in result.as_json()["message"]
    assert set(fake.claims) == {storage.claim_name(OWNER, "home"), storage.claim_name(OWNER, "cache")}


async def test_reset_with_some_deletes_failed_is_multi_status(monkeypatch):
    fake = FakeK8s(monkeypatch, [claim(OWNER, "home"), claim(OWNER, "cache")])
    fake.fail[f"delete:{storage.claim_name(OWNER, 'home')}"] = aiohttp.ClientConnectionError("connection reset")
    result = await reset(fake, ["home", "cache"])
    assert result.status == 207 and result.reset == ["cache"]
    assert result.failed == [{"volume": "home", "reason": "API error ClientConnectionError: connection reset"}]


async def test_api_error_after_deletion_reports_each_claim_not_unavailable(monkeypatch):
    """The deletes went through, then the wait's list call failed: before, the whole request became a 503
    "unavailable" although claims were already gone; now each claim says what is known."""
    fake = FakeK8s(monkeypatch, [claim(OWNER, "home"), claim(OWNER, "cache")])
    fake.fail["wait"] = API_500
    result = await reset(fake, ["home", "cache"])
    assert result.status == 502
    assert {r["result"] for r in result.results} == {"unconfirmed"}
    assert all("deletion accepted" in r["reason"] for r in result.results)
    assert fake.deleted == [storage.claim_name(OWNER, "home"), storage.claim_name(OWNER, "cache")]


async def test_reset_of_claims_that_do_not_exist_is_not_found(monkeypatch):
    fake = FakeK8s(monkeypatch, [claim("u9-bbbbbbbb", "home")])  # someone else's claim
    result = await reset(fake, ["home", "cache"])
    assert result.status == 404
    assert result.failed == [{"volume": "home", "reason": "not found"}, {"volume": "cache", "reason": "not found"}]
    assert fake.deleted == []


async def test_reset_mixed_outcomes(monkeypatch):
    fake = FakeK8s(monkeypatch, [claim(OWNER, "home"), claim(OWNER, "workspace")])
    fake.fail[f"stuck:{storage.claim_name(OWNER, 'workspace')}"] = API_500
    result = await reset(fake, ["home", "workspace", "cache"])
    assert result.status == 207
    assert [r["result"] for r in result.results] == ["reset", "still terminating", "not found"]
    fake = FakeK8s(monkeypatch, [claim(OWNER, "workspace")])
    fake.fail[f"stuck:{storage.claim_name(OWNER, 'workspace')}"] = API_500
    assert (await reset(fake, ["workspace", "cache"])).status == 504  # deleted, not gone yet: a timeout


async def test_a_failing_first_list_raises(monkeypatch):
    """Nothing has happened yet: the handler answers 503 (unavailable), which is then the truth."""
    fake = FakeK8s(monkeypatch, [claim(OWNER, "home")])
    fake.fail["list"] = API_500
    with pytest.raises(ApiException):
        await reset(fake, ["home"])
    assert fake.deleted == []


# ---------------------------------------------------------------- adoption


OLD, NEW = "u4-0ld0ld00", "u7-1e111e11"


def test_adoptable_groups_only_exact_name_other_keys():
    claims = [claim(OLD, "home"), claim(OLD, "cache", orphaned=True, **{"jupyterhub-ds/orphaned-at": "t"}),
              claim(NEW, "home", created="2026-02-01T00:00:00Z"),
              claim("u5-55555555", "home", username="Alice")]  # same slug, another name
    groups = storage.adoptable_groups(claims, "alice", NEW)
    assert [g["owner"] for g in groups] == [OLD]
    assert groups[0]["orphaned"] and groups[0]["orphaned_at"] == "t"
    assert [v["volume"] for v in groups[0]["volumes"]] == ["cache", "home"]
    assert [g["owner"] for g in storage.adoptable_groups(claims, "alice", None)] == [NEW, OLD]


@pytest.mark.parametrize(("body", "text"), [
    (None, "Expected a JSON object"), ({"owner": 3}, "Expected a JSON object"),
    ({"owner": "../x"}, "Invalid owner key"), ({"owner": OLD, "current": "delete"}, "Invalid 'current'"),
    ({"owner": OLD, "force": True}, "Unknown keys: force"),
])
def test_adopt_requests_are_validated(body, text):
    with pytest.raises(storage.StorageError, match=re.escape(text)) as err:
        storage.check_adopt_request(body)
    assert err.value.status == 400


def test_adopt_request_ok():
    assert storage.check_adopt_request({"owner": OLD}) == (OLD, None)
    assert storage.check_adopt_request({"owner": OLD, "current": "orphan"}) == (OLD, "orphan")


async def test_adopt_relabels_and_never_deletes(monkeypatch):
    fake = FakeK8s(monkeypatch, [claim(OLD, "home", orphaned=True, **{"jupyterhub-ds/orphaned-at": "t"}),
                                 claim(OLD, "cache"), claim(NEW, "home")])
    with pytest.raises(storage.StorageError) as err:  # the user already has claims: say what to do with them
        await storage.adopt_claims("ns", "alice", OLD, NEW, None, "admin")
    assert err.value.status == 409 and '"current": "orphan"' in err.value.message and fake.patches == []

    result = await storage.adopt_claims("ns", "alice", OLD, NEW, "orphan", "root")
    assert result["adopted_claims"] == sorted([storage.claim_name(OLD, "home"), storage.claim_name(OLD, "cache")])
    assert result["orphaned_claims"] == [storage.claim_name(NEW, "home")] and result["previous_owner"] == NEW
    assert fake.deleted == [] and len(fake.claims) == 3
    adopted = fake.claims[storage.claim_name(OLD, "home")]["metadata"]
    assert "jupyterhub-ds/orphaned" not in adopted["labels"]
    assert "jupyterhub-ds/orphaned-at" not in adopted["annotations"]
    assert adopted["annotations"]["jupyterhub-ds/adopted-by"] == "root"
    replaced = fake.claims[storage.claim_name(NEW, "home")]["metadata"]
    assert replaced["labels"]["jupyterhub-ds/orphaned"] == "true"
    assert replaced["annotations"]["jupyterhub-ds/orphaned-by"] == f"adoption of {OLD} by root"


@pytest.mark.parametrize(("claims", "owner", "current", "status", "text"), [
    ([], OLD, None, 404, "No volumes with owner key"),
    ([claim(OLD, "home", username="bob")], OLD, None, 409, "recorded for bob, not alice"),
    ([claim(OLD, "home")], OLD, OLD, 409, "already the current key"),
])
async def test_adopt_refusals(monkeypatch, claims, owner, current, status, text):
    fake = FakeK8s(monkeypatch, claims)
    with pytest.raises(storage.StorageError) as err:
        await storage.adopt_claims("ns", "alice", owner, current, "orphan", "root")
    assert err.value.status == status and text in err.value.message
    assert fake.patches == [] and fake.deleted == []


async def test_adopt_with_no_current_claims_needs_no_choice(monkeypatch):
    FakeK8s(monkeypatch, [claim(OLD, "home")])
    result = await storage.adopt_claims("ns", "alice", OLD, NEW, None, "root")
    assert result["orphaned_claims"] == [] and result["adopted_claims"] == [storage.claim_name(OLD, "home")]


async def test_ensure_claims_clears_a_stale_orphaned_label(monkeypatch):
    fake = FakeK8s(monkeypatch, [claim(OWNER, v.name, orphaned=True) for v in SETTINGS.volumes])
    created = await storage.ensure_claims("ns", SETTINGS, OWNER, "alice")
    assert created == []
    assert all("jupyterhub-ds/orphaned" not in c["metadata"]["labels"] for c in fake.claims.values())


async def test_adopt_api_error_midway_says_what_was_done(monkeypatch):
    fake = FakeK8s(monkeypatch, [claim(OLD, "home"), claim(OLD, "cache"), claim(NEW, "home")])
    fake.fail[f"patch:{storage.claim_name(OLD, 'home')}"] = API_500
    with pytest.raises(storage.StorageError) as err:
        await storage.adopt_claims("ns", "alice", OLD, NEW, "orphan", "root")
    assert err.value.status == 502
    assert f"orphaned: {storage.claim_name(NEW, 'home')}" in err.value.message
    assert "was not changed and nothing was deleted" in err.value.message and fake.deleted == []
