"""JupyterHub on the host against the local control plane, wired the way Z2JH 4.4.0 wires its hub.

Started by ci/dev/devenv.py (for `make up` and the end-to-end tests) with:
  JHDS_NAMESPACE, JHDS_PUBLIC_PORT, JHDS_HUB_PORT, JHDS_PROXY_API_PORT, JHDS_SETTINGS (a JSON file
  with the `custom.ds` settings), JHDS_CHP (path of configurable-http-proxy), JHDS_STATE_DIR,
  optionally JHDS_LOAD_ROLES (JSON list of extra roles, like Z2JH's hub.loadRoles),
  JHDS_HUB_CONFIG (optional JSON: extra `hub.config` sections, as Z2JH passes them through),
  JUPYTERHUB_DS_FIRST_ADMIN_PASSWORD (the first admin's password, as the chart passes it from its Secret),
  and KUBECONFIG pointing at the hub ServiceAccount's token (never the admin kubeconfig).
"""

import json
import os

import hub_extensions

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file
env = os.environ
state = env["JHDS_STATE_DIR"]

# --- what Z2JH's jupyterhub_config.py sets (files/hub/jupyterhub_config.py, 4.4.0)
c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
c.JupyterHub.cleanup_servers = False
c.JupyterHub.last_activity_interval = 60
# no wait before sending a spawning user to the progress page: a start answers 202 and runs on after the request
c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 0}
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = int(env["JHDS_PUBLIC_PORT"])
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(env["JHDS_HUB_PORT"])
c.JupyterHub.hub_connect_url = f"http://127.0.0.1:{env['JHDS_HUB_PORT']}"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{env['JHDS_PROXY_API_PORT']}"
c.ConfigurableHTTPProxy.command = [env["JHDS_CHP"]]
c.ConfigurableHTTPProxy.pid_file = os.path.join(state, "proxy.pid")
c.JupyterHub.db_url = f"sqlite:///{os.path.join(state, 'jupyterhub.sqlite')}"
c.JupyterHub.cookie_secret_file = os.path.join(state, "cookie_secret")
c.JupyterHub.pid_file = os.path.join(state, "jupyterhub.pid")
c.JupyterHub.admin_access = True

c.KubeSpawner.namespace = env["JHDS_NAMESPACE"]
c.KubeSpawner.common_labels = {
    "app": "jupyterhub",
    "release": "jupyterhub-ds",
    "app.kubernetes.io/name": "jupyterhub",
    "app.kubernetes.io/instance": "jupyterhub-ds",
    "app.kubernetes.io/managed-by": "kubespawner",
}
c.KubeSpawner.extra_labels = {"hub.jupyter.org/network-access-hub": "true"}
c.KubeSpawner.image = "ghcr.io/jupyterhub-ds/singleuser:0.1.0"
c.KubeSpawner.cmd = ["jupyterhub-singleuser"]
c.KubeSpawner.uid = 1000
c.KubeSpawner.fs_gid = 100
c.KubeSpawner.mem_guarantee = "1G"
c.KubeSpawner.start_timeout = 120
c.KubeSpawner.http_timeout = 60
c.KubeSpawner.tolerations = [
    {"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"},
    {"key": "hub.jupyter.org_dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"},
]
# our chart sets singleuser.storage.type=none (hub_extensions owns the claims), so Z2JH adds no storage

# --- what our chart's values.yaml sets under jupyterhub.hub.config
c.JupyterHub.authenticator_class = "native"
c.Authenticator.allow_all = True
c.NativeAuthenticator.open_signup = False
# the first admin (custom.ds.accounts.firstAdmin) is added to admin_users by hub_extensions.configure

# --- values a test passes as hub.config (Z2JH loads hub.config sections the same way, before extraConfig)
for section, values in json.loads(env.get("JHDS_HUB_CONFIG", "{}")).items():
    c[section].update(values)

# a service token for the end-to-end tests' admin-side calls (the tests act as real users otherwise)
if env.get("JHDS_SERVICE_TOKEN"):
    c.JupyterHub.services = [{"name": "e2e", "api_token": env["JHDS_SERVICE_TOKEN"]}]
    c.JupyterHub.load_roles = [{
        "name": "e2e", "services": ["e2e"],
        "scopes": ["admin:users", "admin:servers", "admin:groups", "list:users", "read:hub"],
    }]

# --- Z2JH's hub.loadRoles (set before extraConfig runs); tests pass extra roles as JSON
if env.get("JHDS_LOAD_ROLES"):
    c.JupyterHub.load_roles = [*c.JupyterHub.get("load_roles", []), *json.loads(env["JHDS_LOAD_ROLES"])]

# --- our chart's hub.extraConfig: the one entry point
with open(env["JHDS_SETTINGS"]) as f:
    hub_extensions.configure(c, json.load(f))

# --- a later hub.extraConfig entry (Z2JH runs them in key order, in this same namespace)
if env.get("JHDS_EXTRA_CONFIG"):
    with open(env["JHDS_EXTRA_CONFIG"]) as f:
        exec(compile(f.read(), env["JHDS_EXTRA_CONFIG"], "exec"))
