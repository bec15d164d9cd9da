"""The chart on the real Z2JH 4.4.0 dependency: every object Z2JH renders with our values, validated, and
Z2JH's own objects checked where our values reach them (hub image and Secret, storage, RBAC, culler,
NetworkPolicies, the hub's restart checksum).

Each variant below is one ``helm template`` (the session's Renderer caches it); the variants are the
install commands the README, chart/README.md and values.example.yaml document.
"""

from __future__ import annotations

import base64
import ipaddress
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = (REPO_ROOT / "values.example.yaml",)
KUBE_VERSIONS = ("1.28.0", "1.34.0")
DS = "jupyterhub.custom.ds"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()
Z2JH = "jupyterhub-ds/charts/jupyterhub/templates/"

# id -> (values files, --set values)
VARIANTS: dict[str, tuple[tuple[Path, ...], tuple[str, ...]]] = {
    # chart/values.yaml alone (Z2JH's culler on, ours off)
    "chart-defaults": ((), ()),
    # README "Install": helm upgrade --install jupyterhub chart -n jupyterhub -f values.example.yaml
    "example": (EXAMPLE, ()),
    # values.example.yaml: branding files with --set-file jupyterhub.custom.brandingFiles.<name>=..., by name
    "example-branding": (EXAMPLE, (f"jupyterhub.custom.brandingFiles.logo\\.png={PNG}",
                                   f"{DS}.branding.logo=logo.png")),
    # README "Pod Security": the chart owns the namespace
    "example-managed-namespace": (EXAMPLE, ("podSecurity.manageNamespace=true",)),
    # README "Culling": Z2JH's culler instead of ours
    "example-z2jh-culler": (EXAMPLE, ("jupyterhub.cull.enabled=true", f"{DS}.culler.enabled=false")),
    # chart/values.yaml: storage off, Z2JH's home claim back
    "example-z2jh-home-claim": (EXAMPLE, (f"{DS}.storage.enabled=false", "jupyterhub.singleuser.storage.type=dynamic")),
    # values.yaml: RBAC granted by the cluster admin instead
    "example-rbac-off": (EXAMPLE, ("rbac.create=false",)),
    # values.example.yaml: NodePort off the clouds
    "example-nodeport": (EXAMPLE, ("jupyterhub.proxy.service.type=NodePort",)),
}
VARIANT_IDS = list(VARIANTS)
HUB_IMAGE = "ghcr.io/jupyterhub-ds/hub"

# Z2JH generates these into its hub Secret on every `helm template` (lookup finds nothing offline), which
# changes the Secret's checksum on every render; pinned, a checksum difference means a values difference.
PINNED_SECRETS = (
    "jupyterhub.hub.config.ConfigurableHTTPProxy.auth_token=" + "a" * 64,
    "jupyterhub.hub.config.JupyterHub.cookie_secret=" + "b" * 64,
    "jupyterhub.hub.config.CryptKeeper.keys={" + "c" * 64 + "}",
    # the kubectl plugin's hub service (chart/values.yaml hub.services.kubectl-jupyterhub): Z2JH generates its token
    "jupyterhub.hub.services.kubectl-jupyterhub.apiToken=" + "d" * 64,
)


def docs_of(renderer: Any, variant: str, *extra: str) -> list[Any]:
    values, set_values = VARIANTS[variant]
    return renderer.documents(*set_values, *extra, values=values)


def z2jh(docs: list[Any], kind: str, name: str) -> dict:
    """Z2JH's object (rendered from the subchart's templates) of that kind and name."""
    found = [r.doc for r in docs if r.source.startswith(Z2JH) and r.doc["kind"] == kind
             and r.doc["metadata"]["name"] == name]
    assert len(found) == 1, f"Z2JH {kind}/{name}: found {len(found)}"
    return found[0]


def hub_values(docs: list[Any]) -> dict:
    """What Z2JH's hub reads with z2jh.get_config: the ``values.yaml`` key of the hub Secret."""
    return yaml.safe_load(base64.b64decode(z2jh(docs, "Secret", "hub")["data"]["values.yaml"]))


# ---------------------------------------------------------------- every object, valid Kubernetes


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("variant", VARIANT_IDS)
def test_every_rendered_object_validates(renderer, variant, kube_version):
    """Z2JH's objects and ours, strictly (unknown fields fail), for the oldest and newest supported API."""
    docs = docs_of(renderer, variant)
    assert any(r.source.startswith(Z2JH) for r in docs), "no Z2JH objects: not the real dependency"
    problems = []
    for r in docs:
        try:
            kubernetes_validate.validate(r.doc, kube_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{r.source} {r.doc['kind']}/{r.doc['metadata']['name']}: {exc.message}")
    assert not problems, "\n".join(problems)


def test_z2jh_core_objects_render_with_the_example(renderer):
    kinds = {(r.doc["kind"], r.doc["metadata"]["name"]) for r in docs_of(renderer, "example")
             if r.source.startswith(Z2JH)}
    assert {("Deployment", "hub"), ("Deployment", "proxy"), ("Secret", "hub"), ("ConfigMap", "hub"),
            ("ServiceAccount", "hub"), ("Role", "hub"), ("RoleBinding", "hub"), ("Service", "hub"),
            ("Service", "proxy-api"), ("Service", "proxy-public"), ("PersistentVolumeClaim", "hub-db-dir"),
            ("NetworkPolicy", "hub"), ("NetworkPolicy", "proxy"), ("NetworkPolicy", "singleuser")} <= kinds


def test_dependency_is_the_pinned_z2jh_chart(chart_dir):
    """charts/ holds the real Z2JH archive of the version Chart.yaml pins (helm does not compare them)."""
    import tarfile

    pinned = yaml.safe_load((chart_dir / "Chart.yaml").read_text())["dependencies"][0]["version"]
    (archive,) = (chart_dir / "charts").glob("jupyterhub-*.tgz")
    with tarfile.open(archive) as tar:
        meta = yaml.safe_load(tar.extractfile("jupyterhub/Chart.yaml").read())
        names = set(tar.getnames())
    assert meta["version"] == pinned
    assert {"jupyterhub/files/hub/jupyterhub_config.py", "jupyterhub/files/hub/z2jh.py",
            "jupyterhub/templates/hub/deployment.yaml"} <= names


# ---------------------------------------------------------------- where our values reach Z2JH's objects


@pytest.mark.parametrize("variant", VARIANT_IDS)
def test_hub_deployment_runs_our_hub_image(renderer, chart_dir, variant):
    app_version = yaml.safe_load((chart_dir / "Chart.yaml").read_text())["appVersion"]
    hub = z2jh(docs_of(renderer, variant), "Deployment", "hub")
    (container,) = [c for c in hub["spec"]["template"]["spec"]["containers"] if c["name"] == "hub"]
    assert container["image"] == f"{HUB_IMAGE}:{app_version}"


def test_hub_secret_carries_custom_ds_and_our_extra_config(renderer):
    docs = docs_of(renderer, "example")
    values = hub_values(docs)
    example = yaml.safe_load(EXAMPLE[0].read_text())["jupyterhub"]
    assert values["custom"]["ds"] == example["custom"]["ds"]
    assert values["hub"]["extraConfig"]["00-jupyterhub-ds"] == "import hub_extensions\nhub_extensions.configure(c)\n"
    # Z2JH's jupyterhub_config.py (in the hub ConfigMap) runs hub.extraConfig from that Secret
    config_py = z2jh(docs, "ConfigMap", "hub")["data"]["jupyterhub_config.py"]
    assert 'get_config("hub.extraConfig", {})' in config_py
    hub = z2jh(docs, "Deployment", "hub")["spec"]["template"]["spec"]
    assert {"name": "secret", "secret": {"secretName": "hub"}} in hub["volumes"]


def test_hub_secret_custom_ds_parses_as_settings(renderer):
    """The exact dict get_config("custom.ds") returns in the hub is accepted by our settings."""
    from hub_extensions.settings import load_settings

    for variant in ("chart-defaults", "example", "example-branding"):
        load_settings(hub_values(docs_of(renderer, variant))["custom"].get("ds"))


@pytest.mark.parametrize(("variant", "storage_type"), [
    ("chart-defaults", "none"), ("example", "none"), ("example-z2jh-home-claim", "dynamic")])
def test_singleuser_storage_of_z2jh(renderer, variant, storage_type):
    """Our per-user claims replace Z2JH's home claim; Z2JH's only claim is the hub database's."""
    docs = docs_of(renderer, variant)
    assert hub_values(docs)["singleuser"]["storage"]["type"] == storage_type
    claims = [r.doc["metadata"]["name"] for r in docs if r.source.startswith(Z2JH)
              and r.doc["kind"] == "PersistentVolumeClaim"]
    assert claims == ["hub-db-dir"]


@pytest.mark.parametrize("variant", [v for v in VARIANT_IDS if v != "example-rbac-off"])
def test_our_rbac_binds_z2jh_hub_service_account_next_to_z2jh_role(renderer, variant):
    docs = docs_of(renderer, variant)
    sa = z2jh(docs, "ServiceAccount", "hub")["metadata"]["name"]
    z2jh_binding = z2jh(docs, "RoleBinding", "hub")
    assert [s["name"] for s in z2jh_binding["subjects"]] == [sa]
    ours = [r.doc for r in docs if r.source == "jupyterhub-ds/templates/hub/rbac.yaml"]
    assert {d["kind"] for d in ours} == {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}
    for binding in (d for d in ours if d["kind"].endswith("Binding")):
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": "jupyterhub"}]
    # ours only adds what Z2JH's Role lacks
    granted = {(g, res, v) for rule in z2jh(docs, "Role", "hub")["rules"] for g in rule["apiGroups"]
               for res in rule["resources"] for v in rule["verbs"]}
    (role,) = [d for d in ours if d["kind"] == "Role"]
    for rule in role["rules"]:
        for g in rule["apiGroups"]:
            for res in rule["resources"]:
                for v in rule["verbs"]:
                    assert (g, res, v) not in granted, f"{g}/{res} {v} is already in Z2JH's hub Role"


def test_local_copy_of_z2jh_hub_role_matches_the_chart(renderer):
    """ci/dev/rbac/z2jh-hub.yaml (the host-run hub's Role) is exactly the Role Z2JH renders."""
    local_role = REPO_ROOT / "ci" / "dev" / "rbac" / "z2jh-hub.yaml"
    local = {d["kind"]: d for d in yaml.safe_load_all(local_role.read_text()) if d}
    docs = docs_of(renderer, "example")
    assert local["Role"]["rules"] == z2jh(docs, "Role", "hub")["rules"]
    assert local["RoleBinding"]["roleRef"]["name"] == z2jh(docs, "RoleBinding", "hub")["roleRef"]["name"]


@pytest.mark.parametrize(("variant", "z2jh_culler", "ours"), [
    ("chart-defaults", True, False), ("example", False, True), ("example-z2jh-culler", True, False)])
def test_one_culler_reaches_the_hub(renderer, variant, z2jh_culler, ours):
    """Z2JH adds its jupyterhub-idle-culler service only when cull.enabled (jupyterhub_config.py)."""
    values = hub_values(docs_of(renderer, variant))
    assert values["cull"]["enabled"] is z2jh_culler
    assert bool(((values["custom"].get("ds") or {}).get("culler") or {}).get("enabled")) is ours


# ---------------------------------------------------------------- NetworkPolicies


def _port_matches(rule_ports: list[dict] | None, port: int, port_name: str | None, protocol: str = "TCP") -> bool:
    if not rule_ports:
        return True  # no ports: every port
    return any(p.get("protocol", "TCP") == protocol and p.get("port") in (None, port, port_name) for p in rule_ports)


def _peer_matches(peers: list[dict] | None, labels: dict | None, ip: str | None) -> bool:
    """Peers in the policy's own namespace: podSelector matchLabels, or an ipBlock."""
    if not peers:
        return True  # no from/to: everyone
    for peer in peers:
        if "podSelector" in peer and "namespaceSelector" not in peer and labels is not None:
            wanted = peer["podSelector"].get("matchLabels") or {}
            if all(labels.get(k) == v for k, v in wanted.items()):
                return True
        if "ipBlock" in peer and ip is not None:
            addr = ipaddress.ip_address(ip)
            block = peer["ipBlock"]
            if addr in ipaddress.ip_network(block["cidr"]) and not any(
                    addr in ipaddress.ip_network(e) for e in block.get("except", [])):
                return True
    return False


def allows(policy: dict, direction: str, *, labels: dict | None = None, ip: str | None = None, port: int,
           port_name: str | None = None) -> bool:
    """Whether ``policy`` lets traffic in (``ingress``: from the peer) or out (``egress``: to the peer)."""
    key = "from" if direction == "ingress" else "to"
    return any(_peer_matches(rule.get(key), labels, ip) and _port_matches(rule.get("ports"), port, port_name)
               for rule in policy["spec"].get(direction) or [])


def pod_labels(docs: list[Any], name: str) -> dict:
    return z2jh(docs, "Deployment", name)["spec"]["template"]["metadata"]["labels"]


def singleuser_labels(docs: list[Any]) -> dict:
    """A user pod's labels as KubeSpawner sets them from Z2JH's config (common_labels, component,
    singleuser.extraLabels)."""
    values = hub_values(docs)
    return {"app": "jupyterhub", "release": "jupyterhub", "component": "singleuser-server",
            **values["singleuser"]["extraLabels"]}


@pytest.fixture(scope="module")
def example_docs(renderer):
    return docs_of(renderer, "example")


@pytest.mark.parametrize("api", ["10.96.0.1:443", "172.20.0.1:443", "192.168.1.10:6443", "34.118.224.1:443"],
                         ids=["private-10", "private-172", "private-192", "public-endpoint"])
def test_netpol_hub_reaches_the_kubernetes_api(example_docs, api):
    """Spawning, claims, Events, node and PodMetrics lists: the hub talks to the API server (private or
    public address, depending on the cloud); Z2JH's hub egress allows both by default."""
    ip, port = api.split(":")
    assert allows(z2jh(example_docs, "NetworkPolicy", "hub"), "egress", ip=ip, port=int(port))


def test_netpol_hub_reaches_user_servers(example_docs):
    """Notifications delivery (POST to the server's ingest endpoint) and the hub's checks of user servers
    go to the pod's port 8888; the user pod's policy lets the hub pod in."""
    hub_policy = z2jh(example_docs, "NetworkPolicy", "hub")
    user_policy = z2jh(example_docs, "NetworkPolicy", "singleuser")
    user = singleuser_labels(example_docs)
    assert allows(hub_policy, "egress", labels=user, port=8888, port_name="notebook-port")
    assert allows(user_policy, "ingress", labels=pod_labels(example_docs, "hub"), port=8888,
                  port_name="notebook-port")


def test_netpol_user_servers_reach_the_hub(example_docs):
    """Activity reports and the hub API from user servers (the culler's last-activity data)."""
    hub_pod = pod_labels(example_docs, "hub")
    user = singleuser_labels(example_docs)
    assert allows(z2jh(example_docs, "NetworkPolicy", "singleuser"), "egress", labels=hub_pod, port=8081)
    assert allows(z2jh(example_docs, "NetworkPolicy", "hub"), "ingress", labels=user, port=8081, port_name="http")


def test_netpol_proxy_reaches_the_hub(example_docs):
    proxy_pod = pod_labels(example_docs, "proxy")
    hub_pod = pod_labels(example_docs, "hub")
    assert allows(z2jh(example_docs, "NetworkPolicy", "proxy"), "egress", labels=hub_pod, port=8081)
    assert allows(z2jh(example_docs, "NetworkPolicy", "hub"), "ingress", labels=proxy_pod, port=8081,
                  port_name="http")
    # and the hub reaches the proxy's API (routes for user servers)
    assert allows(z2jh(example_docs, "NetworkPolicy", "hub"), "egress", labels=proxy_pod, port=8001)
    assert allows(z2jh(example_docs, "NetworkPolicy", "proxy"), "ingress", labels=hub_pod, port=8001,
                  port_name="api")


def test_netpol_evaluator_refuses_what_the_policies_refuse(example_docs):
    """The helper above must be able to say no: an unlabelled pod reaches neither the hub nor a user pod,
    and user pods reach no private address (Z2JH's singleuser egress default)."""
    stranger = {"app": "something-else"}
    assert not allows(z2jh(example_docs, "NetworkPolicy", "hub"), "ingress", labels=stranger, port=8081,
                      port_name="http")
    assert not allows(z2jh(example_docs, "NetworkPolicy", "singleuser"), "ingress", labels=stranger, port=8888,
                      port_name="notebook-port")
    assert not allows(z2jh(example_docs, "NetworkPolicy", "singleuser"), "egress", ip="10.96.0.1", port=443)


# ---------------------------------------------------------------- podSecurity.manageNamespace


def test_managed_namespace_variants_differ_only_by_the_namespace(renderer):
    """manageNamespace adds the Namespace object (offline, lookup finds nothing, so no adoption check) and
    changes nothing else; with it off, no Namespace is rendered and the namespace is the user's."""
    managed = docs_of(renderer, "example-managed-namespace", *PINNED_SECRETS)
    plain = docs_of(renderer, "example", *PINNED_SECRETS)
    (ns,) = [r.doc for r in managed if r.doc["kind"] == "Namespace"]
    assert ns["metadata"]["name"] == "jupyterhub"
    assert ns["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert not [r for r in plain if r.doc["kind"] == "Namespace"]

    def rest(docs: list[Any]) -> list[tuple[str, str, str]]:
        return sorted((r.doc["kind"], r.doc["metadata"]["name"], r.source) for r in docs
                      if r.doc["kind"] != "Namespace" and r.doc["metadata"]["name"] != "jupyterhub-ds-first-admin")

    assert rest(managed) == rest(plain)


def test_managed_namespace_template_checks_ownership_with_lookup(chart_dir):
    """The adoption check runs only against a cluster (lookup); tests/e2e/test_chart_namespace.py runs it."""
    text = (chart_dir / "templates" / "namespace" / "namespace.yaml").read_text()
    assert 'lookup "v1" "Namespace" "" .Release.Namespace' in text
    assert "meta.helm.sh/release-name" in text and "fail" in text


# ---------------------------------------------------------------- the hub restarts when its settings change


def hub_pod_annotations(renderer: Any, *set_values: str) -> dict:
    docs = renderer.documents(*PINNED_SECRETS, *set_values, values=EXAMPLE)
    return z2jh(docs, "Deployment", "hub")["spec"]["template"]["metadata"]["annotations"]


def test_hub_checksum_is_stable_for_the_same_values(renderer):
    first = hub_pod_annotations(renderer)
    again = renderer.documents(*PINNED_SECRETS, values=EXAMPLE, namespace="jupyterhub", release="jupyterhub")
    assert z2jh(again, "Deployment", "hub")["spec"]["template"]["metadata"]["annotations"] == first


@pytest.mark.parametrize("change", [
    f"{DS}.culler.timeoutSeconds=7200",
    f"{DS}.branding.logo=https://example.org/logo.svg",
    f"{DS}.gpu.mode=0",
    "jupyterhub.hub.config.NativeAuthenticator.open_signup=true",
    f"jupyterhub.custom.brandingFiles.logo\\.png={PNG}",
], ids=["culler", "branding-setting", "gpu", "hub-config", "branding-file"])
def test_hub_checksum_changes_with_a_setting(renderer, change):
    """Z2JH's checksum/secret covers the hub Secret, which carries custom.ds: a changed setting restarts the
    hub on `helm upgrade`."""
    assert hub_pod_annotations(renderer, change)["checksum/secret"] != hub_pod_annotations(renderer)["checksum/secret"]


def test_hub_checksum_changes_when_a_branding_file_changes(renderer):
    """A new content for the same file name restarts the hub: the files are in the hub Secret's values."""
    logo = f"{DS}.branding.logo=logo.png"
    one = hub_pod_annotations(renderer, logo, f"jupyterhub.custom.brandingFiles.logo\\.png={PNG}")
    other_png = base64.b64encode(b"\x89PNG\r\n\x1a\n-another-logo").decode()
    two = hub_pod_annotations(renderer, logo, f"jupyterhub.custom.brandingFiles.logo\\.png={other_png}")
    assert one["checksum/secret"] != two["checksum/secret"]


# ---------------------------------------------------------------- the hub's read path, with Z2JH's own code


def test_z2jh_get_config_hands_custom_ds_to_hub_extensions(renderer, tmp_path, monkeypatch):
    """The real path of a hub pod: Z2JH's hub Secret (values.yaml) -> Z2JH's z2jh.py (from the hub ConfigMap)
    -> ``import z2jh`` in hub_extensions.config -> our settings, with the example's values."""
    import importlib
    import sys

    from hub_extensions import config as ds_config

    docs = docs_of(renderer, "example")
    secret_dir = tmp_path / "usr" / "local" / "etc" / "jupyterhub" / "secret"
    secret_dir.mkdir(parents=True)
    (secret_dir / "values.yaml").write_bytes(base64.b64decode(z2jh(docs, "Secret", "hub")["data"]["values.yaml"]))
    z2jh_py = z2jh(docs, "ConfigMap", "hub")["data"]["z2jh.py"]
    assert z2jh_py.count('f"/usr/local/etc/jupyterhub/{source}') == 2  # the Secret mounts it reads
    module_dir = tmp_path / "z2jh-module"
    module_dir.mkdir()
    (module_dir / "z2jh.py").write_text(z2jh_py.replace('f"/usr/local/etc/jupyterhub/{source}',
                                                        f'f"{tmp_path}/usr/local/etc/jupyterhub/{{source}}'))
    monkeypatch.syspath_prepend(str(module_dir))
    monkeypatch.delitem(sys.modules, "z2jh", raising=False)
    importlib.invalidate_caches()
    values = ds_config._values_from_z2jh()
    example = yaml.safe_load(EXAMPLE[0].read_text())["jupyterhub"]["custom"]["ds"]
    assert values == example
    from hub_extensions.settings import load_settings

    settings = load_settings(values)
    assert settings.culler.enabled is True and settings.storage.shared.mount_path == "/mnt/shared"
