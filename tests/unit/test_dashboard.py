"""The home dashboard's pure parts: reading the pod, when to fetch its log, capabilities and why, the document;
and which favicon routes the proxy should hold."""

from __future__ import annotations

from types import SimpleNamespace

from hub_extensions import dashboard, lab_favicon, lab_favicon_api, pod_status
from hub_extensions.branding import Branding
from hub_extensions.runtime import Runtime
from hub_extensions.settings import load_settings


def pod(phase="Running", state=None, restarts=0, gpus=None, sock=False, privileged=False, deleting=False):
    container = {"name": "notebook", "image": "ghcr.io/jupyterhub-ds/singleuser:0.1.0",
                 "resources": {"limits": {"cpu": "2", "memory": "4G", **({"nvidia.com/gpu": gpus} if gpus else {})},
                               "requests": {"memory": "1G"}},
                 "securityContext": {"privileged": True} if privileged else {}}
    meta = {"name": "jupyter-alice", "uid": "u-1", "creationTimestamp": "2026-01-01T00:00:00Z"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:01:00Z"
    return {"metadata": meta,
            "spec": {"nodeName": "cpu-1", "containers": [container],
                     "volumes": [{"name": "ds-docker-sock"}] if sock else []},
            "status": {"phase": phase, "podIP": "10.0.0.5",
                       "containerStatuses": [{"name": "notebook", "restartCount": restarts,
                                              "state": state or {"running": {}}}]}}


def test_pod_summary_reads_what_the_user_has():
    s = dashboard.pod_summary(pod(gpus="2"), "nvidia.com/gpu")
    assert (s["phase"], s["node"], s["image"], s["gpus"]) == ("Running", "cpu-1",
                                                              "ghcr.io/jupyterhub-ds/singleuser:0.1.0", 2)
    assert (s["cpu_limit"], s["memory_limit"], s["memory_request"]) == ("2", "4G", "1G")
    assert s["container"]["state"] == "running"
    assert dashboard.pod_summary(None, "nvidia.com/gpu") is None
    assert dashboard.pod_summary(pod(deleting=True), "nvidia.com/gpu")["phase"] == "Terminating"


def test_the_log_is_read_only_when_it_explains_something():
    summary = lambda p: dashboard.pod_summary(p, "nvidia.com/gpu")  # noqa: E731
    assert not pod_status.needs_log(summary(pod()))
    assert not pod_status.needs_log(summary(pod(phase="Pending", state={"waiting": {"reason": "ContainerCreating"}})))
    assert pod_status.needs_log(summary(pod(state={"waiting": {"reason": "CrashLoopBackOff"}}, restarts=3)))
    assert pod_status.needs_log(summary(pod(state={"terminated": {"exitCode": 3, "reason": "Error"}})))
    assert pod_status.needs_log(summary(pod(phase="Failed")))
    assert not pod_status.needs_log(None)


def test_events_keep_the_last_ones_with_their_time():
    events = [{"type": "Normal", "reason": f"R{i}", "message": f"m{i}", "lastTimestamp": f"t{i}"} for i in range(15)]
    out = pod_status.events_summary(events)
    assert len(out) == pod_status.EVENT_LIMIT and out[-1] == {"type": "Normal", "reason": "R14", "message": "m14",
                                                             "time": "t14", "count": 1}
    assert pod_status.tail_lines("a\nb\nc\n", 2) == ["b", "c"] and pod_status.tail_lines(None) == []


def caps(settings, groups, answer=None, p=None):
    return {c["key"]: c for c in dashboard.capabilities(settings, groups, answer, p)}


def test_capabilities_say_why():
    s = load_settings({})
    c = caps(s, set(), answer=False)
    assert not c["docker-sock"]["granted"] and "Only members of the group docker-sock" in c["docker-sock"]["why"]
    assert not c["privileged"]["granted"]
    assert not c["gpu"]["granted"] and "no node advertises nvidia.com/gpu" in c["gpu"]["why"]
    c = caps(s, {"docker-sock", "docker-privileged"}, answer=True)
    assert c["docker-sock"]["granted"] and "/var/run/docker.sock" in c["docker-sock"]["why"]
    assert c["privileged"]["granted"] and "root on the node" in c["privileged"]["why"]
    assert c["gpu"]["granted"] and c["gpu"]["count"] == 1 and "auto" in c["gpu"]["why"]
    assert "not listed the nodes yet" in caps(s, set(), answer=None)["gpu"]["why"]
    assert "off on this hub" in caps(load_settings({"gpu": {"mode": 0}}), set())["gpu"]["why"]
    only = load_settings({"gpu": {"mode": 1, "group": "bigpu", "count": 2}})
    assert "Only members of the group bigpu" in caps(only, set())["gpu"]["why"]
    assert caps(only, {"bigpu"})["gpu"]["granted"] and "gets 2 nvidia.com/gpu" in caps(only, {"bigpu"})["gpu"]["why"]


def test_capabilities_compare_with_the_running_pod():
    s = load_settings({})
    c = caps(s, {"docker-sock"}, answer=False, p=pod())
    assert c["docker-sock"]["granted"] and c["docker-sock"]["in_pod"] is False  # Restart Server applies it
    c = caps(s, set(), answer=False, p=pod(sock=True, privileged=True, gpus="1"))
    assert c["docker-sock"]["in_pod"] and c["privileged"]["in_pod"] and c["gpu"]["in_pod"]
    assert caps(s, set())["gpu"]["in_pod"] is None


def test_assemble_prefers_the_pod_image_and_passes_usage_through():
    doc = dashboard.assemble(user_name="alice", server={"state": "running"}, pod={"image": "img:pod"}, events=[],
                             log_tail=None, log_error=None, last_failure=None, usage_now=None,
                             session={"culler_enabled": False}, caps=[], image="img:config", volumes=None)
    assert doc["image"] == "img:pod" and doc["usage"] is None and doc["user"] == "alice"
    doc = dashboard.assemble(user_name="alice", server={"state": "stopped"}, pod=None, events=[], log_tail=None,
                             log_error=None, last_failure={"message": "boom"}, usage_now={"cpu_percent": 50.0},
                             session={}, caps=[], image="img:config", volumes=[])
    assert doc["image"] == "img:config" and doc["last_failure"]["message"] == "boom"
    assert doc["usage"] == {"cpu_percent": 50.0}


def spawner(ready, pending, spec):
    return SimpleNamespace(ready=ready, pending=pending, proxy_spec=spec)


def test_favicon_routes_for_ready_servers_kept_while_pending():
    users = {"alice": SimpleNamespace(name="alice", spawners={"": spawner(True, None, "/user/alice/"),
                                                              "gpu": spawner(False, "spawn", "/user/alice/gpu/")}),
             "bob": SimpleNamespace(name="bob", spawners={"": spawner(False, None, "/user/bob/")})}
    wanted, keep = lab_favicon.wanted_routes(users)
    assert wanted == {"/user/alice/static/favicons/": "alice/"}
    assert keep == {"/user/alice/gpu/static/favicons/"}
    assert lab_favicon.favicon_target("http://hub:8081", "/hub/") == "http://hub:8081/hub/ds-lab-favicon"


def test_configure_proxy_uses_ds_proxy_only_with_configurable_http_proxy():
    from traitlets.config import Config

    from hub_extensions import branding
    from hub_extensions.settings import BrandingSettings

    brand = branding.Branding(BrandingSettings(favicon="https://cdn.example/f.ico"),
                              {"favicon": branding.Asset(url="https://cdn.example/f.ico")})
    c = Config()
    lab_favicon.configure_proxy(c, brand)
    assert c.JupyterHub.proxy_class is lab_favicon.DsProxy and lab_favicon.DsProxy.ds_favicon_enabled
    ((route, handler, kwargs),) = lab_favicon_api.handlers(brand)
    assert route == r"/ds-lab-favicon/(.*)" and handler is lab_favicon_api.LabFaviconHandler
    assert kwargs == {"file": None, "url": "https://cdn.example/f.ico"}
    c = Config()
    c.JupyterHub.proxy_class = "traefik"
    lab_favicon.configure_proxy(c, brand)
    assert c.JupyterHub.proxy_class == "traefik"
    stock = branding.Branding(BrandingSettings())
    c = Config()
    lab_favicon.configure_proxy(c, stock)  # no favicon: DsProxy still cleans up routes of an earlier one
    assert c.JupyterHub.proxy_class is lab_favicon.DsProxy and not lab_favicon.DsProxy.ds_favicon_enabled
    assert lab_favicon_api.handlers(stock) == []


def test_page_data_never_breaks_a_page():
    rt = Runtime(load_settings({}), "ns", Branding(load_settings({}).branding))
    assert dashboard.page_data(rt, None) is None
    assert dashboard.page_data(rt, object()) is None  # a broken user object: logged, the page renders without it


def test_crash_log_tail_falls_back_to_the_previous_run(monkeypatch):
    """A container restarted by the kubelet may not have written anything yet: its previous run says why."""
    import asyncio

    from kubernetes_asyncio.client import ApiException

    from hub_extensions import k8s

    logs = {False: "", True: "jhds: bad configuration\n"}
    calls = []

    async def fake_tail(namespace, name, container, lines, previous=False):
        calls.append(previous)
        if previous and logs[True] is None:
            raise ApiException(status=400, reason="previous terminated container not found")
        return logs[previous]

    monkeypatch.setattr(k8s, "pod_log_tail", fake_tail)
    assert asyncio.run(pod_status.crash_log_tail("ns", "jupyter-a")) == ["jhds: bad configuration"]
    assert calls == [False, True]
    logs[False], calls[:] = "now\n", []
    assert asyncio.run(pod_status.crash_log_tail("ns", "jupyter-a")) == ["now"] and calls == [False]
    logs[False], logs[True] = "", None
    assert asyncio.run(pod_status.crash_log_tail("ns", "jupyter-a")) == []
