"""The one settings structure of jupyterhub-ds: typed, documented, validated.

Helm users write these under ``jupyterhub.custom.ds`` (camelCase keys). The hub reads them with
Z2JH's ``get_config("custom.ds")``; tests build them directly. The chart's ``values.schema.json``
section for ``custom.ds`` is generated from these classes (``python -m hub_extensions.settings``), so
Helm and the hub reject the same mistakes. The schema machinery (fields with docs, the schema of a class, errors
in one line) is :mod:`hub_extensions.settings_schema`.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .settings_schema import VALUES_PATH, SettingsError, build, camel, dataclass_schema, one_line, setting

_QUANTITY = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"
_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
SHARED_CLAIM_NAME = "jupyterhub-ds-shared"
# The pod volume of a per-user volume is ``ds-<name>``; these names are taken by our other pod volumes
# (``ds-shared``, ``ds-docker-sock``), so a per-user volume may not use them.
RESERVED_VOLUME_NAMES = ["shared", "docker-sock"]
DOCKER_GID = 999  # what `groupadd --system docker` (docker-ce's Debian/Ubuntu package) gets on a fresh node
_ACCESS_MODES = ["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"]


@dataclass(frozen=True)
class VolumeSettings:
    """One per-user PersistentVolumeClaim."""

    name: str = setting("", "Suffix of the claim name and the key users select when they reset it.",
                        required=True, pattern=_DNS_LABEL, maxLength=20, minLength=1,
                        # "policy-*": the group policies' mounts (ds-policy-mount-N in the pod)
                        **{"not": {"anyOf": [{"enum": RESERVED_VOLUME_NAMES}, {"pattern": "^policy-"}]}})
    mount_path: str = setting("", "Where the volume is mounted in the user's server.", required=True,
                              pattern=r"^/")
    size: str = setting("10Gi", "Requested capacity (a Kubernetes quantity).", pattern=_QUANTITY)
    storage_class: str | None = setting(None, "StorageClass of the claim; null uses the cluster default.")
    access_modes: list[str] = setting(["ReadWriteOnce"], "Access modes of the claim.",
                                      items={"enum": _ACCESS_MODES}, minItems=1)
    description: str = setting("", "Shown to users next to the volume in Manage Volumes.")
    resettable: bool = setting(True, "Whether users (and admins) may reset this volume.")


@dataclass(frozen=True)
class SharedVolumeSettings:
    """One volume shared read-write by every user's server."""

    enabled: bool = setting(True, "Mount a shared volume in every user's server.")
    existing_claim: str | None = setting(
        None, f"Use this existing claim. When null the chart creates one named `{SHARED_CLAIM_NAME}`.",
        pattern=_DNS_SUBDOMAIN, maxLength=253)
    mount_path: str = setting("/mnt/shared", "Where the shared volume is mounted.", pattern=r"^/")
    size: str = setting("10Gi", "Capacity of the claim the chart creates.", pattern=_QUANTITY)
    storage_class: str | None = setting(None, "StorageClass of the claim the chart creates (needs RWX support).")
    access_modes: list[str] = setting(["ReadWriteMany"], "Access modes of the claim the chart creates.",
                                      items={"enum": _ACCESS_MODES}, minItems=1)


DEFAULT_VOLUMES = [
    VolumeSettings(name="home", mount_path="/home", description="User home directory files, configurations"),
    VolumeSettings(name="workspace", mount_path="/home/lab/workspace",
                   description="Project files, notebooks, code"),
    VolumeSettings(name="cache", mount_path="/home/lab/.cache", size="5Gi",
                   description="Temporary files, pip cache, conda cache"),
]


@dataclass(frozen=True)
class StorageSettings:
    """Per-user claims, the shared volume, and what happens to claims when a user goes away."""

    enabled: bool = setting(True, "Manage per-user claims. When false, Z2JH's singleuser.storage applies unchanged.")
    volumes: list[VolumeSettings] = setting(DEFAULT_VOLUMES, "Per-user volumes, each a claim per user.")
    shared: SharedVolumeSettings = setting(SharedVolumeSettings(), "The volume every user shares.")
    on_user_delete: str = setting(
        "retain", "What deleting a user does to their claims: `retain` keeps them, labelled orphaned; "
        "`delete` deletes them.", enum=["retain", "delete"])
    reset_timeout_seconds: int = setting(
        120, "How long a reset waits for deleted claims to disappear (finalizers) before it reports failure.",
        minimum=1, maximum=3600)


@dataclass(frozen=True)
class DockerSockSettings:
    """Members get the node's Docker socket: root on that node."""

    group: str = setting("docker-sock", "Name of the built-in group.", minLength=1)
    host_path: str = setting("/var/run/docker.sock", "Socket path on the node.", pattern=r"^/")
    gid: int | None = setting(
        DOCKER_GID, "GID owning the socket on the nodes (`stat -c %g /var/run/docker.sock`), added to the pod's "
        "supplementalGroups so the user may use it; null adds none.", minimum=0, maximum=4294967294)
    node_selector: dict[str, str] = setting({}, "Node selector for nodes that run a Docker daemon.")


@dataclass(frozen=True)
class DockerPrivilegedSettings:
    """Members run a privileged notebook container: root on the node."""

    group: str = setting("docker-privileged", "Name of the built-in group.", minLength=1)


@dataclass(frozen=True)
class GroupsSettings:
    """Built-in groups whose membership patches the pod spec at spawn time."""

    docker_sock: DockerSockSettings = setting(DockerSockSettings(), "The docker-socket group.")
    docker_privileged: DockerPrivilegedSettings = setting(DockerPrivilegedSettings(), "The privileged group.")
    allow_managed_root: bool = setting(
        False, "With Authenticator.manage_groups (an identity provider sets every group membership), let the "
        "provider's groups named as the two built-in groups give the node's Docker socket or a privileged "
        "container (root on a node). Off: with manage_groups on, those groups patch nothing.")


@dataclass(frozen=True)
class GpuSettings:
    """GPUs through the NVIDIA device plugin."""

    mode: int = setting(2, "0 off, 1 forced (every server requests GPUs), 2 auto (only when a node has GPUs).",
                        enum=[0, 1, 2], upstream="JUPYTERHUB_GPU_ENABLED")
    count: int = setting(1, "GPUs per server (`nvidia.com/gpu` limit).", minimum=1, maximum=64)
    resource: str = setting("nvidia.com/gpu", "Extended resource name the device plugin advertises.")
    group: str | None = setting(None, "Only members of this group get GPUs; null means everyone.", minLength=1)
    node_selector: dict[str, str] = setting({}, "Extra node selector for GPU servers.")
    node_cache_seconds: int = setting(60, "How long auto mode trusts its node list before refreshing it.",
                                      minimum=5, maximum=3600)


_CPU = r"^([0-9]+(\.[0-9]+)?|[0-9]+m)$"
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
# upstream's protected mount paths: these and everything below them ("/" itself only), where the image lives
PROTECTED_PATHS = ("/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/opt", "/proc", "/root", "/run",
                   "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var")


@dataclass(frozen=True)
class PolicyResources:
    """CPU and memory for members' servers, replacing the chart's singleuser values; across groups the largest
    value of each wins, and a limit is never below the request."""

    cpu_request: str | None = setting(None, "CPU request in cores (`0.5`, `500m`, `2`).", pattern=_CPU)
    cpu_limit: str | None = setting(None, "CPU limit in cores (`0.5`, `500m`, `2`).", pattern=_CPU)
    memory_request: str | None = setting(None, "Memory request (`2Gi`).", pattern=_QUANTITY)
    memory_limit: str | None = setting(None, "Memory limit (`16Gi`).", pattern=_QUANTITY)


@dataclass(frozen=True)
class PolicyGpus:
    """GPUs for members' servers, through the NVIDIA device plugin (off when `gpu.mode` is 0; in auto mode only
    while the node cache knows GPU nodes)."""

    count: int = setting(0, "GPUs per server (the `gpu.resource` limit); across groups the largest wins; 0 grants "
                            "none.", minimum=0, maximum=64)
    product: str | None = setting(None, "Only nodes whose `nvidia.com/gpu.product` label has this value "
                                        "(from the highest-priority group that names one).", minLength=1)


@dataclass(frozen=True)
class PolicyMount:
    """An existing claim in the hub's namespace, mounted in members' servers."""

    claim_name: str = setting("", "The PersistentVolumeClaim.", required=True, pattern=_DNS_SUBDOMAIN,
                              maxLength=253)
    mount_path: str = setting("", "Where it is mounted: an absolute path outside the image's own directories "
                                  f"({', '.join(PROTECTED_PATHS)}) and our volumes.", required=True, pattern=r"^/")
    read_only: bool = setting(True, "Mount it read-only.")


@dataclass(frozen=True)
class PolicyDocker:
    """Docker for members' servers: root on the node either way (groups.dockerSock configures the socket).
    Across groups a grant cannot be revoked by another group."""

    socket: bool | None = setting(None, "Mount the node's Docker socket (`groups.dockerSock`).")
    privileged: bool | None = setting(None, "Run the notebook container privileged.")


@dataclass(frozen=True)
class PolicyCulling:
    """The idle culler for members' servers (with `culler.enabled`), e.g. a GPU group culled sooner; from the
    highest-priority group that sets each value, fixed when the server starts."""

    idle_timeout_seconds: int | None = setting(None, "Replaces `culler.timeoutSeconds`.", minimum=10,
                                               maximum=30 * 86400)
    max_extension_hours: int | None = setting(None, "Replaces `culler.maxExtensionHours` (0: no extensions).",
                                              minimum=0, maximum=720)


@dataclass(frozen=True)
class GroupPolicy:
    """What members of one JupyterHub group get in their pod, applied at every start (combine rules:
    docs/admin/group-policies.md)."""

    group: str = setting("", "The JupyterHub group.", required=True, minLength=1, maxLength=255)
    priority: int = setting(0, "Higher wins where one value must be chosen: an environment variable, sudo, a node "
                               "selector key, the claim at a mount path.", minimum=-1000000, maximum=1000000)
    env: dict[str, str] = setting({}, "Environment variables (platform names refused).",
                                  propertyNames={"pattern": _ENV_NAME, "maxLength": 128})
    resources: PolicyResources = setting(PolicyResources(), "CPU and memory.")
    gpus: PolicyGpus = setting(PolicyGpus(), "GPUs.")
    shared_volume: str | None = setting(
        None, "The shared volume: `none`, `ro` (read-only) or `rw`; across groups the widest wins; null leaves it "
              "to other groups and the default (`rw`).", enum=["none", "ro", "rw", None])
    mounts: list[PolicyMount] = setting([], "Existing claims to mount.", maxItems=32)
    sudo: bool | None = setting(
        None, "`true`: the server starts as root and grants its user sudo (Jupyter Docker Stacks' GRANT_SUDO); "
              "`false` (the default for everyone): no privilege escalation in the container.")
    node_selector: dict[str, str] = setting({}, "Node labels members' servers must run on (a dedicated pool).")
    docker: PolicyDocker = setting(
        PolicyDocker(), "Docker. The built-in groups (`groups.dockerSock.group`, `groups.dockerPrivileged.group`) "
        "grant theirs unless their policy here says `false`.")
    culling: PolicyCulling = setting(PolicyCulling(), "Idle culling.")
    profiles: list[str] | None = setting(
        None, "Slugs of the profiles (`singleuser.profileList`) members may see and start; across groups the union; "
              "null: this group restricts nothing. A profile not allowed is hidden from the form and refused "
              "through the API (403).", items={"minLength": 1}, maxItems=200)
    tolerations: list[dict[str, str]] = setting(
        [], "Tolerations (`key`, `operator`, `value`, `effect`) for tainted pools.",
        items={"propertyNames": {"enum": ["key", "operator", "value", "effect"]}})


@dataclass(frozen=True)
class MlflowSettings:
    enabled: bool = setting(True, "Start MLflow inside the lab (ENABLE_SERVICE_MLFLOW).",
                            upstream="JUPYTERHUB_SERVICE_MLFLOW")
    tracking_uri: str = setting("http://localhost:5000", "MLFLOW_TRACKING_URI.")
    port: int = setting(5000, "MLFLOW_PORT.", minimum=1, maximum=65535)
    host: str = setting("0.0.0.0", "MLFLOW_HOST.")
    workers: int = setting(1, "MLFLOW_WORKERS.", minimum=1, maximum=64)


@dataclass(frozen=True)
class LabSettings:
    """The environment contract the lab image reads (all values reach the pod as strings)."""

    mlflow: MlflowSettings = setting(MlflowSettings(), "MLflow inside the lab.")
    resources_monitor: bool = setting(True, "ENABLE_SERVICE_RESOURCES_MONITOR.",
                                      upstream="JUPYTERHUB_SERVICE_RESOURCES_MONITOR")
    tensorboard: bool = setting(True, "ENABLE_SERVICE_TENSORBOARD.", upstream="JUPYTERHUB_SERVICE_TENSORBOARD")
    tensorboard_logdir: str = setting("/tmp/tensorboard", "TENSORBOARD_LOGDIR.")
    tf_cpp_min_log_level: int = setting(3, "TF_CPP_MIN_LOG_LEVEL.", minimum=0, maximum=3,
                                        upstream="TF_CPP_MIN_LOG_LEVEL")
    aux_scripts_path: str = setting(
        "", "JUPYTERLAB_AUX_SCRIPTS_PATH: admin startup scripts, from a read-only source (e.g. a ConfigMap mounted "
        "read-only); a path on the shared or a per-user volume is refused (users can write there).",
        upstream="JUPYTERLAB_AUX_SCRIPTS_PATH", pattern=r"^(/.*)?$")
    aux_menu_path: str = setting(
        "", "JUPYTERLAB_AUX_MENU_PATH: admin lab menus, from a read-only source like the scripts.",
        upstream="JUPYTERLAB_AUX_MENU_PATH", pattern=r"^(/.*)?$")
    timezone: str = setting("Etc/UTC", "JUPYTERLAB_TIMEZONE.", upstream="JUPYTERHUB_TIMEZONE")


@dataclass(frozen=True)
class BrandingSettings:
    """Each value is an http(s) URL, a file name in the chart's branding ConfigMap, or empty for stock."""

    logo: str = setting("", "Hub logo.", upstream="JUPYTERHUB_LOGO_URI")
    favicon: str = setting("", "Hub favicon.", upstream="JUPYTERHUB_FAVICON_URI")
    lab_main_icon: str = setting("", "JupyterLab main icon (JUPYTERLAB_MAIN_ICON_URI).",
                                 upstream="JUPYTERHUB_LAB_MAIN_ICON_URI")
    lab_splash_icon: str = setting("", "JupyterLab splash icon (JUPYTERLAB_SPLASH_ICON_URI).",
                                   upstream="JUPYTERHUB_LAB_SPLASH_ICON_URI")
    files_dir: str = setting("/usr/local/etc/jupyterhub-ds/branding",
                             "Where the chart mounts the branding ConfigMap in the hub.", pattern=r"^/")


@dataclass(frozen=True)
class LockoutSettings:
    """Failed logins, counted per (user name, client address) in the hub database, so a restart keeps them."""

    failures: int = setting(
        5, "Failed logins for one user name from one client address before that pair is blocked; 0 turns the "
        "lockout off.", minimum=0, maximum=1000)
    block_seconds: int = setting(60, "The first block's length. Each further block of the same pair doubles it "
                                     "(back-off) until a successful login.", minimum=1, maximum=86400)
    max_block_seconds: int = setting(3600, "The longest block (the back-off's cap).", minimum=1,
                                     maximum=30 * 86400)


@dataclass(frozen=True)
class AccountsSettings:
    """NativeAuthenticator accounts: the first admin, admin-created users with generated passwords."""

    first_admin: str = setting(
        "admin", "The first admin (added to admin_users). The hub creates their credential at start from the "
        "chart's Secret `jupyterhub-ds-first-admin` (key `password`) when none exists.", minLength=1,
        maxLength=128, pattern=r"^[^,/\s]+$", upstream="JUPYTERHUB_ADMIN")
    allow_admin_signup: bool = setting(
        False, "Let visitors sign up with an admin's name at /hub/signup (NativeAuthenticator would authorize "
        "them at once). Off: admins get in with the first admin's password or from an admin.")
    force_password_change: bool = setting(
        True, "A user whose password an admin generated must change it before their server starts.")
    password_words: int = setting(4, "Words in a generated password (xkcdpass).", minimum=3, maximum=8,
                                  upstream="JUPYTERHUB_AUTOGENERATED_PASSWORD_WORDS")
    password_delimiter: str = setting("-", "Between the words of a generated password.", maxLength=3,
                                      upstream="JUPYTERHUB_AUTOGENERATED_PASSWORD_DELIMITER")
    password_min_word_length: int = setting(4, "Shortest word in generated passwords.", minimum=3, maximum=9)
    password_max_word_length: int = setting(6, "Longest word in generated passwords.", minimum=3, maximum=9)
    min_password_length: int = setting(
        12, "Shortest password a user may choose at sign-up or when changing it (NativeAuthenticator's "
        "common-password check is on too).", minimum=8, maximum=72)
    logins_per_minute: int = setting(
        30, "Login attempts one client address may make per minute, whatever the name; more are answered 429 "
        "before any password is checked or counted.", minimum=1, maximum=10000)
    signups_per_minute: int = setting(
        5, "Sign-up attempts one client address may make per minute; more are answered 429.", minimum=1,
        maximum=10000)
    max_pending_signups: int = setting(
        200, "Sign-ups waiting for an admin's authorization at most; further sign-ups are refused until an admin "
        "authorizes or discards some.", minimum=1, maximum=100000)
    lockout: LockoutSettings = setting(LockoutSettings(), "Lockout after failed logins.")
    forwarded_hops: int = setting(
        1, "How many proxies you run append to X-Forwarded-For in front of the hub: the client address is that "
        "many entries from the right. 1: Z2JH's proxy only (the default); 2: an ingress or load balancer in "
        "front of proxy-public that sets X-Forwarded-For.", minimum=1, maximum=10)


@dataclass(frozen=True)
class CullerSettings:
    """The in-hub idle culler, which honours session extensions (replaces Z2JH's cull.* when enabled)."""

    enabled: bool = setting(False, "Run the in-hub culler. Needs jupyterhub.cull.enabled false (the chart "
                            "refuses both).", upstream="JUPYTERHUB_IDLE_CULLER_ENABLED")
    timeout_seconds: int = setting(3600, "A server idle this long (and past its extension) is stopped.",
                                   minimum=10, maximum=30 * 86400, upstream="JUPYTERHUB_IDLE_CULLER_TIMEOUT")
    every_seconds: int = setting(300, "How often the culler looks at the running servers.", minimum=1, maximum=86400,
                                 upstream="JUPYTERHUB_IDLE_CULLER_INTERVAL")
    max_age_seconds: int = setting(0, "Stop servers older than this whatever their activity or extension; 0 is off.",
                                   minimum=0, maximum=365 * 86400, upstream="JUPYTERHUB_IDLE_CULLER_MAX_AGE")
    max_extension_hours: int = setting(
        24, "Users may extend their session up to this many hours beyond the idle timeout (whole hours; 0 is off).",
        minimum=0, maximum=720, upstream="JUPYTERHUB_IDLE_CULLER_MAX_EXTENSION")
    concurrency: int = setting(10, "At most this many servers are stopped at once.", minimum=1, maximum=100)


@dataclass(frozen=True)
class ActivityVolumeSettings:
    """Where the activity monitor's Volumes column gets its figures."""

    prometheus_url: str | None = setting(
        None, "Prometheus base URL with the kubelet's volume stats (`kubelet_volume_stats_used_bytes`); null shows "
        "each claim's requested capacity only.", pattern=r"^https?://\S+$")
    update_seconds: int = setting(300, "How long the claim list and used bytes are cached.", minimum=10, maximum=86400)


@dataclass(frozen=True)
class ActivitySettings:
    """The activity monitor (/hub/activity): usage from metrics-server, samples and scores in the hub database."""

    enabled: bool = setting(True, "Serve /hub/activity and its API, and sample every user's activity.")
    resources_update_seconds: int = setting(
        10, "CPU/memory refresh window: one metrics.k8s.io pod list per window, shared by every request.",
        minimum=1, maximum=3600)
    sample_interval_seconds: int = setting(600, "How often the sampler records one row per user.", minimum=10,
                                           maximum=86400)
    retention_days: int = setting(7, "Samples older than this are deleted (and leave the score).", minimum=1,
                                  maximum=365)
    half_life_hours: int = setting(72, "Half-life of a sample's weight in the activity score.", minimum=1,
                                   maximum=168)
    inactive_after_minutes: int = setting(
        60, "A running server whose last activity is older than this is inactive.", minimum=1, maximum=1440)
    target_hours: int = setting(8, "Active hours per day that show as a full activity bar.", minimum=1, maximum=24)
    volumes: ActivityVolumeSettings = setting(ActivityVolumeSettings(), "The Volumes column.")


@dataclass(frozen=True)
class UserEnvSettings:
    """Per-user environment variables (``/hub/api/users/<name>/env-vars``, :mod:`hub_extensions.env_vars`)."""

    enabled: bool = setting(
        True, "Users set environment variables for their own servers (a Secret per user, injected by reference; "
        "a group policy's `env` wins over them). When false, none are injected and the API refuses changes.")


@dataclass(frozen=True)
class Settings:
    """Everything under ``jupyterhub.custom.ds``."""

    storage: StorageSettings = setting(StorageSettings(), "Per-user and shared volumes.")
    groups: GroupsSettings = setting(GroupsSettings(), "Built-in groups that patch the pod spec.")
    gpu: GpuSettings = setting(GpuSettings(), "GPU servers.")
    lab: LabSettings = setting(LabSettings(), "Lab environment contract.")
    branding: BrandingSettings = setting(BrandingSettings(), "Logo, favicon and lab icons.")
    accounts: AccountsSettings = setting(AccountsSettings(), "Accounts (NativeAuthenticator).")
    culler: CullerSettings = setting(CullerSettings(), "Idle culler and session extensions.")
    activity: ActivitySettings = setting(ActivitySettings(), "Activity monitor.")
    group_policies: list[GroupPolicy] = setting(
        [], "Per-group policies: what members of each group get in their pod.", maxItems=1000)
    user_env: UserEnvSettings = setting(UserEnvSettings(), "Per-user environment variables.")
    hub_url: str | None = setting(
        None, "Hub URL as single-user servers reach it, scheme://host[:port] without the base URL (for lab "
        "icon URLs); null derives it from the hub (http://hub:8081 on Z2JH).", pattern=r"^https?://[^/?#\s]+/?$")


# ---------------------------------------------------------------- parsing and validation


@functools.cache
def _validator() -> Any:
    import jsonschema  # in the hub image (a JupyterHub dependency); pinned in requirements/hub-image.txt

    return jsonschema.Draft7Validator(dataclass_schema(Settings))


def validate(raw: Any) -> None:
    """Check a ``custom.ds`` value against the chart's schema (the same one Helm applies)."""
    import jsonschema

    error = jsonschema.exceptions.best_match(_validator().iter_errors(raw))
    if error is not None:
        raise SettingsError(one_line(error))


def load_settings(raw: Mapping[str, Any] | None) -> Settings:
    """Validate a ``custom.ds`` mapping with the chart's JSON schema and return the typed settings.

    Defaults fill gaps. Errors are one line naming the key (``jupyterhub.custom.ds.gpu.mode: ...``).
    """
    if raw is None:
        raw = {}
    validate(raw)
    settings = build(Settings, raw)
    _check_cross_field(settings)
    return settings


def _check_cross_field(settings: Settings) -> None:
    names = [v.name for v in settings.storage.volumes]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise SettingsError(f"{VALUES_PATH}.storage.volumes[{i}].name: expected a unique name, got {name!r} twice")
    paths = [v.mount_path for v in settings.storage.volumes]
    if settings.storage.shared.enabled:
        paths.append(settings.storage.shared.mount_path)
    for i, p in enumerate(paths):
        if p in paths[:i]:
            raise SettingsError(f"{VALUES_PATH}.storage: expected unique mount paths, got {p!r} twice")
    _check_group_policies(settings, paths)
    for key in ("aux_scripts_path", "aux_menu_path"):
        path = getattr(settings.lab, key)
        writable = next((p for p in paths if path and _under(path, p)), None)
        if writable is not None:
            raise SettingsError(f"{VALUES_PATH}.lab.{camel(key)}: expected a path users cannot write (e.g. a "
                                f"read-only ConfigMap mount), got {path!r} on the user-writable volume at {writable}")


def _check_group_policies(settings: Settings, volume_paths: list[str]) -> None:
    groups = [p.group for p in settings.group_policies]
    for i, policy in enumerate(settings.group_policies):
        key = f"{VALUES_PATH}.groupPolicies[{i}]"
        if policy.group in groups[:i]:
            raise SettingsError(f"{key}.group: expected one policy per group, got {policy.group!r} twice")
        seen: list[str] = []
        for j, mount in enumerate(policy.mounts):
            path = mount.mount_path.rstrip("/") or "/"
            protected = next((p for p in PROTECTED_PATHS if _under(path, p)), None) or ("/" if path == "/" else None)
            clash = next((v for v in volume_paths if _under(path, v) or _under(v, path)), None)
            if protected or clash or path in seen:
                why = (f"inside the protected {protected}" if protected else
                       f"on our volume at {clash}" if clash else "mounted twice")
                raise SettingsError(f"{key}.mounts[{j}].mountPath: expected a path outside the image's directories "
                                    f"and our volumes, got {mount.mount_path!r} ({why})")
            seen.append(path)


def _under(path: str, mount: str) -> bool:
    """Whether ``path`` is ``mount`` or inside it (paths compared by component, trailing slashes ignored)."""
    path, mount = path.rstrip("/") or "/", mount.rstrip("/") or "/"
    return path == mount or path.startswith(mount if mount == "/" else mount + "/")


# ---------------------------------------------------------------- JSON schema for the chart


def main() -> None:
    """``python -m hub_extensions.settings`` prints the schema of ``custom.ds`` for the chart."""
    json.dump(dataclass_schema(Settings), sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
