"""Commands of ``kubectl jupyterhub`` (argparse); each one a small function over the hub's REST API.

Exit codes: 0 ok, 1 failure (one ``error: ...`` line on stderr, the hub's own message when the hub refused),
2 usage. Every command takes kubectl's ``--kubeconfig``, ``--context``, ``-n/--namespace`` and ``-o``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

from . import __version__, kube, output
from .hubapi import Hub, HubError

PROG = "kubectl jupyterhub"


class Failure(Exception):
    """A failed command: exit 1 with this one-line message."""


class Usage(Exception):
    """A usage error found after parsing: exit 2."""


class Parser(argparse.ArgumentParser):
    """argparse with kubectl's usage convention: one ``error:`` line on stderr, exit 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"error: {message} (see '{self.prog} -h')\n")
        sys.exit(2)


# ---------------------------------------------------------------- context of one invocation

class Ctx:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.kubectl = kube.Kubectl(kubeconfig=getattr(args, "kubeconfig", None),
                                    context=getattr(args, "context", None),
                                    namespace=getattr(args, "namespace", None))
        self.fmt: str = getattr(args, "output", None) or "table"
        self._release: kube.Release | None = None
        self._forward: kube.PortForward | None = None
        self._hub: Hub | None = None

    @property
    def release(self) -> kube.Release:
        if self._release is None:
            self._release = kube.find_release(self.kubectl)
        return self._release

    @property
    def hub(self) -> Hub:
        if self._hub is None:
            release = self.release
            self._forward = kube.PortForward(self.kubectl, release.pod, release.port).__enter__()
            self._hub = Hub(f"http://127.0.0.1:{self._forward.local_port}{release.base_url}hub/api", release.token)
        return self._hub

    def close(self) -> None:
        if self._forward is not None:
            self._forward.__exit__()
            self._forward = None

    def feature(self, method: str, path: str, what: str, body: Any = None, **params: Any) -> tuple[int, Any]:
        """A call to an endpoint a hub may not have: 404 without a JSON message means "not on this hub"."""
        try:
            return self.hub.request(method, path, body=body, params=params or None)
        except HubError as e:
            if e.status == 404 and e.message in ("Not Found", "HTTP 404"):
                raise Failure(f"{what} is not available on this hub ({method} /hub/api{path} answered 404)") from None
            raise

    def user_exists(self, name: str) -> dict[str, Any]:
        """The user's model; "No such user: NAME" (exit 1) where JupyterHub's own handlers say only "Not Found"."""
        try:
            return self.hub.get(f"/users/{quote(name)}")
        except HubError as e:
            if e.status == 404:
                raise HubError(404, f"No such user: {name}", e.path) from None
            raise


def quote(name: str) -> str:
    from urllib.parse import quote as q

    return q(name, safe="")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# ---------------------------------------------------------------- status

def gpu_summary(gpu: Any) -> str:
    """``auto: 2 GPU nodes`` from the health endpoint's ``gpu`` (mode and, in auto mode, the nodes seen)."""
    if not isinstance(gpu, dict):
        return "not reported"
    text = str(gpu.get("mode_name", gpu.get("mode")))
    if "nodes_with_gpus" in gpu:
        nodes = gpu["nodes_with_gpus"]
        text += ": nodes not listed yet" if nodes is None else f": {len(nodes)} GPU node{'s' * (len(nodes) != 1)}"
    return text


def metrics_summary(metrics: Any) -> str:
    """``available`` or ``unavailable (<why>)`` from the health endpoint's ``metrics``."""
    if not isinstance(metrics, dict):
        return "not reported"
    return "available" if metrics.get("available") else f"unavailable ({metrics.get('error', 'no reason given')})"


def cmd_status(ctx: Ctx) -> None:
    release = ctx.release
    hub = ctx.hub
    info = hub.get("/")
    users = hub.paged("/users")
    servers = [s for u in users for s in (u.get("servers") or {}).values() if s.get("ready")]
    image = next((c.get("image") for c in release.deployment["spec"]["template"]["spec"]["containers"]
                  if c.get("name") == "hub"), None)
    data: dict[str, Any] = {
        "namespace": release.namespace, "release": release.name,
        "chart": kube.chart_version(ctx.kubectl, release.name),
        "z2jh": release.deployment["metadata"].get("labels", {}).get("chart"),
        "hub_image": image, "jupyterhub": info.get("version"), "hub_pod": release.pod,
        "users": len(users), "running_servers": len(servers),
    }
    try:
        _, session = hub.request("GET", f"/users/{quote(users[0]['name'])}/session-info") if users else (0, None)
        data["culler"] = ("enabled" if session.get("culler_enabled") else "disabled") if session else "unknown"
    except HubError:
        data["culler"] = "not available on this hub"
    try:
        _, health = hub.request("GET", "/ds/health")
        data["health"] = health
        data["gpu"] = gpu_summary(health.get("gpu")) if isinstance(health, dict) else "not reported"
        data["metrics"] = metrics_summary(health.get("metrics")) if isinstance(health, dict) else "not reported"
    except HubError as e:
        unavailable = "not available on this hub" if e.status == 404 else f"error: {e.message}"
        data["health"] = data["gpu"] = data["metrics"] = unavailable
    if ctx.fmt != "table":
        return output.emit(ctx.fmt, data)
    lines = [f"{k.replace('_', ' ').capitalize() + ':':<18}{output.cell(v)}" for k, v in data.items() if k != "health"]
    if isinstance(data["health"], dict):
        lines += [f"{'Health:':<18}" + ", ".join(f"{k}={output.cell(v)}" for k, v in data["health"].items()
                                                 if not isinstance(v, (dict, list)))]
    output.emit("table", data, text="\n".join(lines))


# ---------------------------------------------------------------- users

USER_COLUMNS = [("NAME", "name"), ("ADMIN", "admin"), ("SERVER", "server"), ("GROUPS", "groups"),
                ("LAST-ACTIVITY", "last_activity")]


def server_summary(user: dict[str, Any]) -> str:
    s = (user.get("servers") or {}).get("")
    if not s:
        return "stopped"
    if s.get("pending"):
        return s["pending"]
    return "running" if s.get("ready") else "starting"


def pending_signups(ctx: Ctx) -> list[dict[str, Any]]:
    """Every page of ``GET /ds/signups?state=pending`` (following ``_pagination.next``; one page on older hubs)."""
    signups: list[dict[str, Any]] = []
    offset = 0
    while True:
        _, data = ctx.feature("GET", "/ds/signups", "Listing sign-ups", state="pending", offset=offset, limit=200)
        signups += data["signups"]
        nxt = (data.get("_pagination") or {}).get("next")
        if not nxt or not data["signups"]:
            return signups
        offset = nxt["offset"]


def cmd_users_list(ctx: Ctx) -> None:
    if ctx.args.pending:
        rows = [s for s in pending_signups(ctx) if not s["authorized"]]  # a hub before paging ignores ``state``
        return output.emit(ctx.fmt, rows, rows, [("NAME", "username"), ("EMAIL", "email"),
                                                 ("AUTHORIZED", "authorized")])
    users = ctx.hub.paged("/users")
    rows = [{**u, "server": server_summary(u)} for u in users]
    output.emit(ctx.fmt, users, rows, USER_COLUMNS)


def cmd_users_create(ctx: Ctx) -> None:
    names = list(dict.fromkeys(ctx.args.names))
    _, created = ctx.hub.request("POST", "/users", body={"usernames": names, "admin": ctx.args.admin})
    _, creds = ctx.hub.request("POST", "/admin/credentials", body={"usernames": names})
    passwords = {c["username"]: c["password"] for c in creds.get("credentials", [])}
    rows = [{"username": u["name"], "admin": u.get("admin", False), "password": passwords.get(u["name"])}
            for u in created]
    output.emit(ctx.fmt, {"users": rows}, rows, [("NAME", "username"), ("ADMIN", "admin"), ("PASSWORD", "password")])
    if ctx.fmt == "table":
        sys.stderr.write("The passwords are shown once; users must change them at their first login.\n")


def cmd_users_delete(ctx: Ctx) -> None:
    for name in ctx.args.names:
        ctx.user_exists(name)
    for name in ctx.args.names:
        ctx.hub.request("DELETE", f"/users/{quote(name)}")
    rows = [{"username": n, "result": "deleted"} for n in ctx.args.names]
    output.emit(ctx.fmt, {"deleted": ctx.args.names}, rows, [("NAME", "username"), ("RESULT", "result")])


def cmd_users_rename(ctx: Ctx) -> None:
    ctx.user_exists(ctx.args.old)
    _, user = ctx.hub.request("PATCH", f"/users/{quote(ctx.args.old)}", body={"name": ctx.args.new})
    output.emit(ctx.fmt, user, text=f"user {ctx.args.old} renamed to {user['name']}")


def cmd_users_authorize(ctx: Ctx) -> None:
    results = []
    for name in ctx.args.names:
        _, r = ctx.feature("POST", f"/ds/signups/{quote(name)}", "Authorizing sign-ups",
                           body={"authorized": not ctx.args.revoke})
        results.append(r)
    output.emit(ctx.fmt, {"signups": results}, results, [("NAME", "username"), ("AUTHORIZED", "authorized")])


# ---------------------------------------------------------------- servers

SERVER_COLUMNS = [("USER", "user"), ("SERVER", "server"), ("STATUS", "status"), ("STARTED", "started"),
                  ("LAST-ACTIVITY", "last_activity"), ("URL", "url")]


def cmd_servers_list(ctx: Ctx) -> None:
    users = ctx.hub.paged("/users", state="active")
    rows = []
    for u in users:
        for name, s in (u.get("servers") or {}).items():
            status = s.get("pending") or ("running" if s.get("ready") else "starting")
            rows.append({"user": u["name"], "server": name or "(default)", "status": status,
                         "started": s.get("started"), "last_activity": s.get("last_activity"), "url": s.get("url")})
    output.emit(ctx.fmt, {"servers": rows}, rows, SERVER_COLUMNS)


def wait_server(ctx: Ctx, user: str, ready: bool, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        model = ctx.user_exists(user)
        s = (model.get("servers") or {}).get("")
        if (ready and s and s.get("ready")) or (not ready and not s):
            return model
        if time.monotonic() > deadline:
            raise Failure(f"server of {user} not {'ready' if ready else 'stopped'} after {timeout:.0f}s "
                          f"(now: {server_summary(model)})")
        time.sleep(1)


def _start_or_stop(ctx: Ctx, start: bool) -> None:
    """POST or DELETE the default server; 201/204 mean done, 202 means under way (``--wait`` waits for it)."""
    user = ctx.args.user
    ctx.user_exists(user)
    done_status, done, under_way = (201, "running", "starting") if start else (204, "stopped", "stopping")
    status, _ = ctx.hub.request("POST" if start else "DELETE", f"/users/{quote(user)}/server")
    result = done if status == done_status else under_way
    if ctx.args.wait and status != done_status:
        wait_server(ctx, user, start, ctx.args.timeout)
        result = done
    output.emit(ctx.fmt, {"user": user, "server": result}, text=f"server of {user}: {result}")


def cmd_servers_start(ctx: Ctx) -> None:
    _start_or_stop(ctx, start=True)


def cmd_servers_stop(ctx: Ctx) -> None:
    _start_or_stop(ctx, start=False)


def cmd_servers_restart(ctx: Ctx) -> None:
    ctx.user_exists(ctx.args.user)
    _, r = ctx.feature("POST", f"/users/{quote(ctx.args.user)}/restart-server", "Restart Server")
    output.emit(ctx.fmt, r, text=f"server of {ctx.args.user}: {r.get('message')}")


# ---------------------------------------------------------------- volumes

def cmd_volumes_list(ctx: Ctx) -> None:
    if ctx.args.user:
        ctx.user_exists(ctx.args.user)
        _, r = ctx.feature("GET", f"/users/{quote(ctx.args.user)}/manage-volumes", "Manage Volumes")
        rows = [{"user": r["user"], **v} for v in r.get("volumes", [])]
        return output.emit(ctx.fmt, r, rows, [("USER", "user"), ("VOLUME", "volume"), ("CLAIM", "claim"),
                                              ("STATUS", "status"), ("SIZE", "size"), ("MOUNT", "mount_path"),
                                              ("RESETTABLE", "resettable")])
    ctx.release  # noqa: B018 - the namespace must hold a release
    claims = ctx.kubectl.get("pvc", "-l", "jupyterhub-ds/volume")["items"]
    rows = []
    for c in claims:
        meta = c["metadata"]
        labels, ann = meta.get("labels", {}), meta.get("annotations", {})
        rows.append({"user": ann.get(kube.USERNAME_ANNOTATION, labels.get(kube.USERNAME_ANNOTATION)),
                     "volume": labels.get("jupyterhub-ds/volume"), "claim": meta["name"],
                     "status": c.get("status", {}).get("phase"),
                     "size": c["spec"].get("resources", {}).get("requests", {}).get("storage"),
                     "owner": labels.get("jupyterhub-ds/owner"),
                     "orphaned": labels.get("jupyterhub-ds/orphaned") == "true",
                     "created": meta.get("creationTimestamp")})
    rows.sort(key=lambda r: (r["user"] or "", r["volume"] or ""))
    output.emit(ctx.fmt, {"volumes": rows}, rows, [("USER", "user"), ("VOLUME", "volume"), ("CLAIM", "claim"),
                                                   ("STATUS", "status"), ("SIZE", "size"), ("ORPHANED", "orphaned"),
                                                   ("CREATED", "created")])


def confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        raise Usage("refusing to reset volumes without confirmation: stdin is not a terminal; pass --yes")
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def cmd_volumes_reset(ctx: Ctx) -> None:
    user, volumes = ctx.args.user, list(dict.fromkeys(ctx.args.volumes))
    ctx.user_exists(user)
    if not ctx.args.yes and not confirm(f"Reset (delete) the volumes {', '.join(volumes)} of {user}? "
                                        "Their data is lost."):
        raise Failure("aborted: nothing was reset")
    status, r = ctx.feature("DELETE", f"/users/{quote(user)}/manage-volumes", "Manage Volumes",
                            body={"volumes": volumes})
    rows = r.get("results", [])
    output.emit(ctx.fmt, r, rows, [("VOLUME", "volume"), ("CLAIM", "claim"), ("RESULT", "result"),
                                   ("REASON", "reason")])
    if status == 207:
        raise Failure(r.get("message") or "some volumes were not reset")


def cmd_volumes_adopt(ctx: Ctx) -> None:
    user = ctx.args.user
    ctx.user_exists(user)
    if not ctx.args.owner:
        _, r = ctx.feature("GET", f"/users/{quote(user)}/adoptable-volumes", "Volume adoption")
        rows = [{"owner": g.get("owner"), **v} for g in r.get("adoptable", []) for v in g.get("volumes", [])]
        output.emit(ctx.fmt, r, rows, [("OWNER", "owner"), ("VOLUME", "volume"), ("CLAIM", "claim"),
                                       ("STATUS", "status"), ("SIZE", "size"), ("ORPHANED", "orphaned"),
                                       ("CREATED", "created")])
        if ctx.fmt == "table":
            sys.stderr.write(f"Adopt with: {PROG} volumes adopt {user} --owner <OWNER>"
                             if rows else f"No adoptable volumes for {user}.")
            sys.stderr.write("\n")
        return
    body: dict[str, Any] = {"owner": ctx.args.owner}
    if ctx.args.orphan_current:
        body["current"] = "orphan"
    _, r = ctx.feature("POST", f"/users/{quote(user)}/adopt-volumes", "Volume adoption", body=body)
    output.emit(ctx.fmt, r, text=r.get("message", "adopted"))


# ---------------------------------------------------------------- top, extend, broadcast

TOP_COLUMNS = [("USER", "username"), ("ACTIVE", "server_active"), ("CPU%", "cpu_percent"),
               ("MEMORY-MB", "memory_mb"), ("MEMORY%", "memory_percent"), ("SCORE", "activity_score"),
               ("REMAINING-S", "time_remaining_seconds"), ("VOLUMES-MB", "volume_size_mb"),
               ("LAST-ACTIVITY", "last_activity")]


def cmd_top(ctx: Ctx) -> None:
    while True:
        _, r = ctx.feature("GET", "/activity", "The activity monitor")
        if ctx.args.watch and ctx.fmt == "table" and sys.stdout.isatty():
            sys.stdout.write("\x1b[H\x1b[2J")
        output.emit(ctx.fmt, r, r.get("users", []), TOP_COLUMNS)
        if not ctx.args.watch:
            return
        sys.stdout.flush()
        time.sleep(ctx.args.interval)


def cmd_extend(ctx: Ctx) -> None:
    ctx.user_exists(ctx.args.user)
    _, r = ctx.feature("POST", f"/users/{quote(ctx.args.user)}/extend-session", "Session extension",
                       body={"hours": ctx.args.hours})
    output.emit(ctx.fmt, r, text=r.get("message", "extended"))


def cmd_broadcast(ctx: Ctx) -> None:
    a = ctx.args
    if a.to and a.group:
        raise Usage("--to and --group exclude each other")
    body: dict[str, Any] = {"message": a.message, "variant": a.variant, "autoClose": a.auto_close * 1000 or False}
    if a.to:
        body["recipients"] = a.to
    elif a.group:
        body["recipients"] = {"group": a.group}
    _, r = ctx.feature("POST", "/notifications/broadcast", "Notifications", body=body)
    rows = r.get("details", [])
    if ctx.fmt == "table":
        sys.stdout.write(f"delivered to {r.get('successful', 0)} of {r.get('total', 0)} server(s)"
                         + (f" ({r['message']})" if r.get("message") else "") + "\n")
        if rows:
            output.table(rows, [("USER", "username"), ("SERVER", "server_name"), ("STATUS", "status"),
                                ("ERROR", "error")])
    else:
        output.emit(ctx.fmt, r)
    if r.get("failed"):
        raise Failure(f"{r['failed']} of {r['total']} deliveries failed")


# ---------------------------------------------------------------- logs, events

def cmd_logs(ctx: Ctx) -> None:
    user = ctx.args.user
    ctx.user_exists(user)
    pods = kube.user_pods(ctx.kubectl, user)
    wanted = ctx.args.server or ""
    pods = [p for p in pods if (p["metadata"].get("annotations") or {}).get("hub.jupyter.org/servername", "")
            == wanted]
    if not pods:
        raise Failure(f"{user} has no server pod{f' for server {wanted}' if wanted else ''} "
                      f"in namespace {ctx.release.namespace} (is the server running?)")
    args = ["logs", f"pod/{pods[0]['metadata']['name']}", "-c", ctx.args.container]
    if ctx.args.tail is not None:
        args += ["--tail", str(ctx.args.tail)]
    if ctx.args.follow:
        import subprocess

        raise SystemExit(subprocess.call([*ctx.kubectl.base(), *args, "--follow"]))
    sys.stdout.write(ctx.kubectl.run(*args))


EVENT_COLUMNS = [("TIME", "time"), ("SOURCE", "source"), ("KIND", "kind"), ("USER", "user"),
                 ("OBJECT", "object"), ("MESSAGE", "message")]


def cmd_events(ctx: Ctx) -> None:
    user = ctx.args.user
    if user:
        ctx.user_exists(user)
    rows: list[dict[str, Any]] = []
    hub_events: Any = None
    if not ctx.args.kube_only:
        try:
            _, hub_events = ctx.feature("GET", "/ds/events", "The event trail", user=user, limit=ctx.args.limit)
        except Failure as e:
            sys.stderr.write(f"warning: {e}\n")
        for e in (hub_events or {}).get("events", []) if isinstance(hub_events, dict) else hub_events or []:
            rows.append({"time": e.get("time") or e.get("timestamp"), "source": "hub", "kind": e.get("kind"),
                         "user": e.get("user"), "object": e.get("server") or "", "message": e.get("message")})
    items = ctx.kubectl.get("events", "-l", "app.kubernetes.io/managed-by=jupyterhub-ds")["items"]
    mine: set[str] = set()
    if user:
        mine = {p["metadata"]["name"] for p in kube.user_pods(ctx.kubectl, user)}
    for ev in items:
        obj = ev.get("involvedObject", {})
        message = ev.get("message", "")
        if user and obj.get("name") not in mine and f" {user} " not in f" {message} ".replace(":", " "):
            continue
        rows.append({"time": ev.get("lastTimestamp") or ev.get("eventTime") or ev["metadata"].get("creationTimestamp"),
                     "source": "kubernetes", "kind": ev.get("reason"), "user": user or "",
                     "object": f"{obj.get('kind', '').lower()}/{obj.get('name')}", "message": message})
    rows.sort(key=lambda r: str(r["time"] or ""), reverse=True)
    rows = rows[: ctx.args.limit]
    output.emit(ctx.fmt, {"events": rows}, rows, EVENT_COLUMNS)


# ---------------------------------------------------------------- parser

def common_parser() -> argparse.ArgumentParser:
    """kubectl's flags, accepted before or after the command (SUPPRESS: a later position never resets them)."""
    p = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    p.add_argument("--kubeconfig", metavar="PATH", help="kubeconfig file (default: kubectl's)")
    p.add_argument("--context", metavar="NAME", help="kubeconfig context (default: the current one)")
    p.add_argument("-n", "--namespace", metavar="NS", help="namespace of the release (default: the context's)")
    p.add_argument("-o", "--output", choices=output.FORMATS, help="output format (default: table)")
    return p


def build_parser() -> Parser:
    common = common_parser()
    parser = Parser(prog=PROG, parents=[common], description="Admin operations on a jupyterhub-ds release "
                    "(hub API through a port-forward to the hub pod, as the hub service kubectl-jupyterhub).")
    parser.add_argument("--version", action="version", version=f"kubectl-jupyterhub {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)

    def add(container: Any, name: str, func: Callable[[Ctx], None], help: str) -> argparse.ArgumentParser:
        p = container.add_parser(name, parents=[common], help=help, description=help)
        p.set_defaults(func=func)
        return p

    def group(name: str, help: str) -> Any:
        p = sub.add_parser(name, parents=[common], help=help, description=help)
        return p.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=Parser)

    add(sub, "status", cmd_status, "chart and hub versions, users, running servers, culler, GPUs and metrics")

    users = group("users", "list, create, delete, rename and authorize users")
    p = add(users, "list", cmd_users_list, "list users (or, with --pending, sign-ups awaiting authorization)")
    p.add_argument("--pending", action="store_true", help="sign-ups not authorized yet")
    p = add(users, "create", cmd_users_create, "create users; prints each generated password once")
    p.add_argument("names", nargs="+", metavar="USER")
    p.add_argument("--admin", action="store_true", help="make them admins")
    p = add(users, "delete", cmd_users_delete, "delete users (their volumes follow storage.onUserDelete)")
    p.add_argument("names", nargs="+", metavar="USER")
    p = add(users, "rename", cmd_users_rename, "rename a user (their login and volumes follow)")
    p.add_argument("old", metavar="USER")
    p.add_argument("new", metavar="NEW_NAME")
    p = add(users, "authorize", cmd_users_authorize, "authorize sign-ups (NativeAuthenticator)")
    p.add_argument("names", nargs="+", metavar="USER")
    p.add_argument("--revoke", action="store_true", help="withdraw the authorization instead")

    servers = group("servers", "list, start, stop and restart servers")
    add(servers, "list", cmd_servers_list, "list running and pending servers")
    for name, func, help in (("start", cmd_servers_start, "start USER's server"),
                             ("stop", cmd_servers_stop, "stop USER's server")):
        p = add(servers, name, func, help)
        p.add_argument("user", metavar="USER")
        p.add_argument("--wait", action="store_true", help="wait until it is done")
        p.add_argument("--timeout", type=float, default=300, help="seconds --wait waits (default 300)")
    p = add(servers, "restart", cmd_servers_restart, "restart USER's server (a new pod, the same volumes)")
    p.add_argument("user", metavar="USER")

    volumes = group("volumes", "list, reset and adopt per-user volumes")
    p = add(volumes, "list", cmd_volumes_list, "the volumes of USER (hub API), or every claim of the release")
    p.add_argument("user", nargs="?", metavar="USER")
    p = add(volumes, "reset", cmd_volumes_reset, "reset (delete) volumes of USER; asks unless --yes")
    p.add_argument("user", metavar="USER")
    p.add_argument("volumes", nargs="+", metavar="VOLUME")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    p = add(volumes, "adopt", cmd_volumes_adopt,
            "list claims USER could adopt (after a lost hub database), or adopt one owner key's claims")
    p.add_argument("user", metavar="USER")
    p.add_argument("--owner", metavar="KEY", help="the owner key to adopt (from the listing)")
    p.add_argument("--orphan-current", action="store_true",
                   help="keep the user's current claims as orphaned instead of refusing")

    p = add(sub, "top", cmd_top, "the activity monitor: CPU, memory, activity score per user")
    p.add_argument("-w", "--watch", action="store_true", help="refresh until interrupted")
    p.add_argument("--interval", type=float, default=10, help="seconds between refreshes (default 10)")

    p = add(sub, "extend", cmd_extend, "extend USER's session by HOURS (up to the culler's ceiling)")
    p.add_argument("user", metavar="USER")
    p.add_argument("hours", type=int, metavar="HOURS")

    p = add(sub, "broadcast", cmd_broadcast, "send MESSAGE into the JupyterLab of users with a running server")
    p.add_argument("message", metavar="MESSAGE")
    p.add_argument("--to", action="append", metavar="USER", help="only this user (repeatable)")
    p.add_argument("--group", metavar="GROUP", help="only this group's members")
    p.add_argument("--variant", default="info",
                   choices=["default", "info", "success", "warning", "error", "in-progress"])
    p.add_argument("--auto-close", type=int, default=5, metavar="SECONDS", help="0: until dismissed (default 5)")

    p = add(sub, "logs", cmd_logs, "the log of USER's server pod")
    p.add_argument("user", metavar="USER")
    p.add_argument("--server", default="", metavar="NAME", help="a named server (default: the default server)")
    p.add_argument("-c", "--container", default="notebook", help="container (default notebook)")
    p.add_argument("--tail", type=int, metavar="N", help="last N lines")
    p.add_argument("-f", "--follow", action="store_true", help="stream the log")

    p = add(sub, "events", cmd_events, "the hub's event trail and jupyterhub-ds Kubernetes Events, newest first")
    p.add_argument("user", nargs="?", metavar="USER")
    p.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    p.add_argument("--kube-only", action="store_true", help="only Kubernetes Events")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    ctx = Ctx(args)
    try:
        args.func(ctx)
        return 0
    except Usage as e:
        sys.stderr.write(f"error: {e}\n")
        return 2
    except HubError as e:
        sys.stderr.write(f"error: {e.message}\n")
        return 1
    except (Failure, kube.KubeError, output.OutputError) as e:
        sys.stderr.write(f"error: {e}\n")
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    finally:
        ctx.close()
