"""Build the project's container images on this machine, with no container daemon and no registry pull.

Why: the local cluster needs the hub, single-user, proxy and pause images, but a developer's machine or CI
here has no Docker engine and reaches no image registry (only Debian's mirror, PyPI, npm and the Go proxy).
So the project's own Dockerfiles (images/hub, images/singleuser) are built with buildah (``--isolation
chroot``, its own storage under ``$JHDS_CACHE/images``) on stand-in bases made here: debootstrap makes a
Debian bookworm root filesystem from the host's mirror, and the small Dockerfiles in ``ci/dev/images/``
add Debian packages and the same PyPI/npm pins as the published bases (see each Dockerfile for what
differs). Each finished image is a docker-archive ``$JHDS_CACHE/images/<name>-<key>.tar`` tagged with the
reference the chart and Z2JH pull (``REFS``), so ``ctr -n k8s.io images import`` names it exactly so.

Caching: an image's key is the sha256 of everything that goes into it (Dockerfile, build args, the files
of its build context, the pins, its bases' keys). An archive whose key matches is not rebuilt, and a base
whose key matches stays in buildah's storage, so a change to hub_extensions rebuilds only the hub image.
One build at a time per cache (a file lock); archives are written under a temporary name, then renamed.

Usage:
    python -m ci.dev.images build [NAME...]                   # prints "name path" lines
    python -m ci.dev.images import --address SOCK [NAME...]   # builds if needed, then imports
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STANDINS = Path(__file__).resolve().parent / "images"
SUITE = "bookworm"
# Bump to rebuild everything (e.g. after changing how images are made here).
SCHEMA = "1"
# Debian packages this module runs on the host (it installs missing ones with apt-get).
BUILD_DEBS = ("buildah", "debootstrap", "debian-archive-keyring", "gcc", "libc6-dev")
IMPORT_DEBS = ("containerd",)  # ctr
# The path of the CA bundle in the Debian images (ca-certificates is part of the debootstrap base).
IMAGE_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def _read(path: Path, pattern: str) -> str:
    match = re.search(pattern, path.read_text(), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"{path}: no match for {pattern!r}")
    return match.group(1)


APP_VERSION = _read(REPO / "chart" / "Chart.yaml", r"^appVersion:\s*[\"']?([^\"'\s#]+)")
Z2JH_VERSION = _read(REPO / "chart" / "Chart.yaml", r"-\s*name:\s*jupyterhub\s*\n\s*version:\s*[\"']?([^\"'\s#]+)")
CHP_VERSION = json.loads((REPO / "package.json").read_text())["dependencies"]["configurable-http-proxy"]
# The upstream image's pins, from the Z2JH release kept next to the repository (shared/).
HUB_PINS = REPO.parent / "shared" / "z2jh" / Z2JH_VERSION / "hub-image-requirements.txt"

REFS: dict[str, str] = {
    "hub": f"ghcr.io/jupyterhub-ds/hub:{APP_VERSION}",
    "singleuser": f"ghcr.io/jupyterhub-ds/singleuser:{APP_VERSION}",
    # the tags Z2JH 4.4.0 pulls (its values.yaml: proxy.chp.image, scheduling.userPlaceholder.image)
    "proxy": "quay.io/jupyterhub/configurable-http-proxy:5.2.0",
    "pause": "registry.k8s.io/pause:3.10.1",
}


@dataclasses.dataclass(frozen=True)
class Target:
    """One image: a Dockerfile, the files its build context holds, its build args and bases."""

    name: str
    dockerfile: Path
    files: tuple[tuple[str, Path], ...]  # (path in the context, source file or directory)
    args: tuple[tuple[str, str], ...] = ()
    bases: tuple[tuple[str, str], ...] = ()  # (build arg, target name): the arg gets the base's local tag
    recipe: str = ""  # what `prepare` does, part of the key
    prepare: Callable[[Path], None] | None = None  # adds generated files to the context


def _log(message: str) -> None:
    print(f"[images {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def cache_root() -> Path:
    """``$JHDS_CACHE``, else ``$XDG_CACHE_HOME/jupyterhub-ds``, else ``~/.cache/jupyterhub-ds``."""
    if os.environ.get("JHDS_CACHE"):
        return Path(os.environ["JHDS_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "jupyterhub-ds"


def images_dir() -> Path:
    """Where the archives, buildah's storage, the build logs and the lock live."""
    return cache_root() / "images"


@functools.cache
def _storage_driver(where: Path) -> str:
    """overlay (much faster than vfs here) unless ``$JHDS_BUILDAH_DRIVER`` says otherwise or the cache is on
    overlayfs, where an overlay upper directory cannot live."""
    if os.environ.get("JHDS_BUILDAH_DRIVER"):
        return os.environ["JHDS_BUILDAH_DRIVER"]
    where.mkdir(parents=True, exist_ok=True)
    fstype = subprocess.run(["stat", "-f", "-c", "%T", str(where)], capture_output=True, text=True).stdout.strip()
    return "vfs" if fstype in ("overlayfs", "overlay") else "overlay"


def _buildah(*args: str) -> list[str]:
    driver = _storage_driver(images_dir())
    store = images_dir() / f"storage-{driver}"
    return ["buildah", "--root", str(store / "root"), "--runroot", str(store / "run"),
            "--storage-driver", driver, *args]


# --- the host: packages, apt sources, CA bundle ----------------------------------------------------------------


def _ensure_debs(packages: Iterable[str]) -> None:
    """Install the Debian packages this module needs on the host, if missing (the project installs its own)."""
    missing = [p for p in packages if subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True).stdout != "install ok installed"]
    if not missing:
        return
    if os.geteuid() != 0:
        raise RuntimeError(f"needs the Debian packages {' '.join(missing)} (apt-get install them as root)")
    _log(f"apt-get install {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, stdout=sys.stderr)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
                   check=True, env=env, stdout=sys.stderr)


def _apt_entries() -> list[tuple[str, str]]:
    """(URI, suite) of the host's `deb` sources, one-line and deb822 formats."""
    entries: list[tuple[str, str]] = []
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.MULTILINE))
                if "deb" in fields.get("Types", "").split() and fields.get("Enabled", "yes") != "no":
                    uris, suites = fields.get("URIs", "").split(), fields.get("Suites", "").split()
                    entries += [(uri, suite) for uri in uris for suite in suites]
        elif path.name == "sources.list" or path.suffix == ".list":
            for line in text.splitlines():
                words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
                if len(words) >= 3 and words[0] == "deb":
                    entries.append((words[1], words[2]))
    return entries


def _debian_sources() -> tuple[str, list[str]]:
    """The host's Debian mirror for SUITE (debootstrap uses it) and the sources.list lines for the images."""
    entries = [(uri.rstrip("/"), suite) for uri, suite in _apt_entries()]
    mirrors = [uri for uri, suite in entries if suite == SUITE]
    if not mirrors:
        raise RuntimeError(f"no `{SUITE}` entry in the host's apt sources: cannot tell which Debian mirror to use")
    wanted = {SUITE, f"{SUITE}-updates", f"{SUITE}-security"}
    lines = list(dict.fromkeys(f"deb {uri} {suite} main" for uri, suite in entries if suite in wanted))
    return mirrors[0], lines


def _host_ca_bundle() -> str | None:
    """The host's CA bundle: mounted over the images' bundle during builds, so pip and npm trust what the host
    trusts (e.g. a TLS-inspecting proxy's CA) without it ending up in an image."""
    for candidate in (os.environ.get("SSL_CERT_FILE"), os.environ.get("PIP_CERT"),
                      ssl.get_default_verify_paths().cafile):
        if candidate and Path(candidate).is_file():
            return str(Path(candidate).resolve())
    return None


# --- the images ------------------------------------------------------------------------------------------------


def _debootstrap(context: Path) -> None:
    """Debian SUITE (minbase + ca-certificates) from the host's mirror, as rootfs.tar in the context."""
    mirror, lines = _debian_sources()
    rootfs = context / "rootfs"
    started = time.monotonic()
    _log(f"debian: debootstrap --variant=minbase {SUITE} (the host's Debian mirror)")
    log = images_dir() / "logs" / "debootstrap.log"
    with log.open("w") as out:
        proc = subprocess.run(["debootstrap", "--variant=minbase", "--include=ca-certificates", SUITE,
                               str(rootfs), mirror], stdout=out, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"debootstrap failed, see {log}:\n{_tail(log)}")
    (rootfs / "etc/apt/sources.list").write_text("\n".join(lines) + "\n")
    # Slim it like Debian's own images, and upgrade from -updates and -security now: a later `apt-get install`
    # that upgrades ca-certificates would fail while the host's bundle is mounted over the image's.
    shutil.copy(context / "setup-rootfs.sh", rootfs / "tmp/setup-rootfs.sh")
    with log.open("a") as out:
        proc = subprocess.run(["chroot", str(rootfs), "sh", "/tmp/setup-rootfs.sh"], stdout=out, stderr=out,
                              env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"})
    if proc.returncode != 0:
        raise RuntimeError(f"setup-rootfs.sh failed in the new root filesystem, see {log}:\n{_tail(log)}")
    (rootfs / "tmp/setup-rootfs.sh").unlink()
    subprocess.run(["tar", "--numeric-owner", "--xattrs", "--exclude=./dev/*", "--exclude=./proc/*",
                    "--exclude=./sys/*", "-C", str(rootfs), "-cf", str(context / "rootfs.tar"), "."], check=True)
    shutil.rmtree(rootfs)
    _timings.append(("debian: debootstrap", time.monotonic() - started))


def _compile_pause(context: Path) -> None:
    subprocess.run(["gcc", "-static", "-Os", "-s", "-Wall", "-Wextra", "-Werror", "-o", str(context / "pause"),
                    str(context / "pause.c")], check=True)


def _targets() -> dict[str, Target]:
    version = (("VERSION", APP_VERSION),)
    debian = (("DEBIAN_IMAGE", "debian"),)
    hub_files = ("pyproject.toml", "README.md", "hub_extensions", "kubectl_jupyterhub")
    targets = [
        Target("debian", STANDINS / "debian/Dockerfile", (("", STANDINS / "debian"),), prepare=_debootstrap,
               recipe=f"debootstrap --variant=minbase --include=ca-certificates {SUITE}; setup-rootfs.sh"),
        Target("python", STANDINS / "python/Dockerfile", (("", STANDINS / "python"),), bases=debian),
        Target("k8s-hub", STANDINS / "k8s-hub/Dockerfile",
               (("", STANDINS / "k8s-hub"), ("requirements.txt", HUB_PINS)), bases=(("PYTHON_IMAGE", "python"),)),
        Target("scipy-notebook", STANDINS / "scipy-notebook/Dockerfile", (("", STANDINS / "scipy-notebook"),),
               bases=debian),
        Target("hub", REPO / "images/hub/Dockerfile", tuple((f, REPO / f) for f in hub_files), version,
               bases=(("BASE_IMAGE", "k8s-hub"), ("BUILDER_IMAGE", "python"))),
        Target("singleuser", REPO / "images/singleuser/Dockerfile", (("", REPO / "images/singleuser"),), version,
               bases=(("BASE_IMAGE", "scipy-notebook"),)),
        Target("proxy", STANDINS / "proxy/Dockerfile", (("", STANDINS / "proxy"),), (("CHP_VERSION", CHP_VERSION),),
               bases=debian),
        Target("pause", STANDINS / "pause/Dockerfile", (("", STANDINS / "pause"),),
               recipe="gcc -static -Os -s pause.c", prepare=_compile_pause),
    ]
    return {t.name: t for t in targets}


def _walk(source: Path) -> Iterator[tuple[str, Path]]:
    """(relative path, file) of a file or a directory tree, sorted; bytecode caches left out."""
    if source.is_file():
        yield "", source
        return
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if path.is_file() and "__pycache__" not in rel.parts and path.suffix != ".pyc":
            yield rel.as_posix(), path


def _key(name: str, targets: Mapping[str, Target], keys: dict[str, str]) -> str:
    """sha256 of everything that goes into the image, its bases' keys included (memoised in ``keys``)."""
    if name in keys:
        return keys[name]
    target, digest = targets[name], hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        digest.update(f"{label}\0{len(data)}\0".encode() + data)

    add("schema", SCHEMA.encode())
    add("dockerfile", target.dockerfile.read_bytes())
    for arg, value in target.args:
        add(f"arg {arg}", value.encode())
    for arg, base in target.bases:
        add(f"base {arg}", _key(base, targets, keys).encode())
    add("recipe", target.recipe.encode())
    for dest, source in target.files:
        if not source.exists():
            raise FileNotFoundError(f"{name}: {source} is missing")
        for rel, path in _walk(source):
            add(f"file {dest}/{rel} {os.access(path, os.X_OK)}", path.read_bytes())
    keys[name] = digest.hexdigest()
    return keys[name]


def _tag(name: str, key: str) -> str:
    return f"localhost/jupyterhub-ds/{name}:{key[:16]}"


def archive_path(name: str, key: str) -> Path:
    """The docker-archive of image ``name`` with cache key ``key`` (it exists once built)."""
    return images_dir() / f"{name}-{key[:16]}.tar"


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _image_exists(tag: str) -> bool:
    return subprocess.run(_buildah("inspect", "--type", "image", tag), capture_output=True).returncode == 0


_timings: list[tuple[str, float]] = []


def _bud(target: Target, tag: str | None, keys: Mapping[str, str]) -> str:
    """``buildah bud`` of the target in a context that holds exactly the hashed files (STEP lines to stderr);
    returns the image ID. Final images get no tag: the archive is to carry their reference only."""
    work = images_dir() / "tmp" / f"{target.name}-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    context = work / "context"
    context.mkdir(parents=True)
    try:
        for dest, source in target.files:
            if source.is_dir():
                shutil.copytree(source, context / dest, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(source, context / dest)
        if target.prepare:
            target.prepare(context)
        args = [f"--build-arg={name}={value}" for name, value in target.args]
        args += [f"--build-arg={arg}={_tag(base, keys[base])}" for arg, base in target.bases]
        ca = _host_ca_bundle()
        if ca:
            args.append(f"--volume={ca}:{IMAGE_CA_BUNDLE}:ro")
        args += [f"--tag={tag}"] if tag else []
        cmd = _buildah("bud", "--isolation=chroot", "--pull=never", "--format=docker", "--layers=false",
                       f"--file={target.dockerfile}", f"--iidfile={work / 'iid'}", *args, str(context))
        log = images_dir() / "logs" / f"{target.name}.log"
        with log.open("w") as out:
            out.write(" ".join(cmd) + "\n")
            out.flush()
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            assert proc.stdout is not None
            for line in proc.stdout:
                out.write(line)
                if re.match(r"(\[\d+/\d+\] )?STEP ", line):
                    _log(f"{target.name}: {line.strip()[:150]}")
        if proc.wait() != 0:
            raise RuntimeError(f"{target.name}: buildah bud failed (log {log}):\n{_tail(log)}")
        return (work / "iid").read_text().strip()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _build_one(name: str, targets: Mapping[str, Target], keys: Mapping[str, str], done: dict[str, Path]) -> None:
    """Build ``name`` unless its key is cached, after any of its bases that is not in the storage."""
    key = keys[name]
    tag = _tag(name, key)
    if name in REFS and archive_path(name, key).is_file():
        done[name] = archive_path(name, key)
        return
    if name not in REFS and _image_exists(tag):
        return
    for _, base in targets[name].bases:
        _build_one(base, targets, keys, done)
    started = time.monotonic()
    _log(f"{name}: building {REFS.get(name, tag)}")
    image = _bud(targets[name], None if name in REFS else tag, keys)
    if name in REFS:
        archive = archive_path(name, key)
        part = archive.with_name(f".{archive.name}.part-{os.getpid()}")
        part.unlink(missing_ok=True)
        try:
            subprocess.run(_buildah("push", "--quiet", image, f"docker-archive:{part}:{REFS[name]}"),
                           check=True, stdout=subprocess.DEVNULL)
            os.replace(part, archive)
        finally:
            part.unlink(missing_ok=True)
        subprocess.run(_buildah("rmi", image), capture_output=True)  # the archive is the cache
        for old in images_dir().glob(f"{name}-*.tar"):
            if old != archive:
                old.unlink(missing_ok=True)
        done[name] = archive
        _log(f"{name}: {REFS[name]} -> {archive} ({archive.stat().st_size / 2**20:.0f} MiB)")
    else:  # drop older builds of this base, so the storage does not grow with every change
        listing = subprocess.run(_buildah("images", "--format", "{{.Name}}:{{.Tag}}"), capture_output=True, text=True)
        for old in listing.stdout.split():
            if old.startswith(f"localhost/jupyterhub-ds/{name}:") and old != tag:
                subprocess.run(_buildah("rmi", old), capture_output=True)
    _timings.append((name, time.monotonic() - started))
    _log(f"{name}: built in {time.monotonic() - started:.1f}s")


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """One build per cache at a time: a second process waits, then finds the first one's results."""
    images_dir().mkdir(parents=True, exist_ok=True)
    with (images_dir() / ".lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _log(f"waiting for another build (lock {images_dir() / '.lock'})")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def build(names: list[str] | None = None) -> dict[str, Path]:
    """Build the named images (hub, singleuser, proxy, pause; None = all) unless cached; name -> archive."""
    names = list(REFS) if names is None else names
    unknown = sorted(set(names) - set(REFS))
    if unknown:
        raise ValueError(f"unknown image(s) {', '.join(unknown)}; known: {', '.join(REFS)}")
    if CHP_VERSION != REFS["proxy"].rpartition(":")[2]:
        _log(f"warning: package.json pins configurable-http-proxy {CHP_VERSION}, Z2JH pulls {REFS['proxy']}")
    targets = _targets()
    keys: dict[str, str] = {}
    done: dict[str, Path] = {}
    _timings.clear()
    started = time.monotonic()
    with _locked():
        for name in names:  # keys first: when every archive is cached, nothing else (not even buildah) runs
            _key(name, targets, keys)
        if any(not archive_path(n, keys[n]).is_file() for n in names):
            if os.geteuid() != 0:
                raise RuntimeError("building images needs root (debootstrap, buildah --isolation chroot)")
            _ensure_debs(BUILD_DEBS)
            (images_dir() / "logs").mkdir(exist_ok=True)
            # what an interrupted build left (the lock says no other build is running)
            subprocess.run(_buildah("rm", "--all"), capture_output=True)
            shutil.rmtree(images_dir() / "tmp", ignore_errors=True)
        for name in names:
            _build_one(name, targets, keys, done)
    if _timings:
        _log("timings: " + ", ".join(f"{step} {seconds:.1f}s" for step, seconds in _timings)
             + f"; total {time.monotonic() - started:.1f}s")
    return {name: done[name] for name in names}


# --- containerd ------------------------------------------------------------------------------------------------


def _archive_identity(archive: Path) -> tuple[str, str]:
    """(reference, config digest) of a single-image docker-archive."""
    with tarfile.open(archive) as tar:
        manifest, config = tar.extractfile("manifest.json"), None
        if manifest is not None:
            (entry,) = json.load(manifest)
            config = tar.extractfile(entry["Config"])
        if config is None:
            raise RuntimeError(f"{archive} is not a docker-archive")
        return entry["RepoTags"][0], "sha256:" + hashlib.sha256(config.read()).hexdigest()


def _present_config(ctr: list[str], ref: str) -> str | None:
    """Config digest of ``ref`` in containerd's k8s.io namespace, None when it is not there."""
    listing = subprocess.run([*ctr, "images", "ls", f"name=={ref}"], capture_output=True, text=True, check=True)
    digests = [line.split()[2] for line in listing.stdout.splitlines()[1:] if line.split()[:1] == [ref]]
    if not digests:
        return None
    blob = json.loads(subprocess.run([*ctr, "content", "get", digests[0]], capture_output=True, check=True).stdout)
    for manifest in blob.get("manifests", []):  # an index: this machine's platform
        platform = manifest.get("platform", {})
        if platform.get("os", "linux") == "linux" and platform.get("architecture", "amd64") == "amd64":
            blob = json.loads(subprocess.run([*ctr, "content", "get", manifest["digest"]], capture_output=True,
                                             check=True).stdout)
            break
    return blob.get("config", {}).get("digest")


def import_into(address: str, archives: Mapping[str, Path] | Iterable[Path], snapshotter: str | None = None) -> None:
    """``ctr -n k8s.io images import`` each archive into the containerd at ``address``, unless that containerd
    already has the image with the same content (same config digest under the same reference)."""
    _ensure_debs(IMPORT_DEBS)
    paths = list(archives.values()) if isinstance(archives, Mapping) else list(archives)
    ctr = ["ctr", "--address", address, "--namespace", "k8s.io"]
    for path in paths:
        ref, config = _archive_identity(path)
        if _present_config(ctr, ref) == config:
            _log(f"{ref}: already in containerd ({address})")
            continue
        started = time.monotonic()
        extra = [f"--snapshotter={snapshotter}"] if snapshotter else []
        subprocess.run([*ctr, "images", "import", *extra, str(path)], check=True, stdout=sys.stderr)
        _log(f"{ref}: imported into containerd ({address}) in {time.monotonic() - started:.1f}s")


def main(argv: list[str] | None = None) -> int:
    """CLI: ``build [NAME...]`` prints ``name path`` lines; ``import --address SOCK [NAME...]``."""
    parser = argparse.ArgumentParser(prog="python -m ci.dev.images", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build_cmd = sub.add_parser("build", help="build the images (cached) and print `name archive` lines")
    build_cmd.add_argument("names", nargs="*", metavar="NAME", help=", ".join(REFS) + " (default: all)")
    import_cmd = sub.add_parser("import", help="build if needed, then import into a containerd")
    import_cmd.add_argument("--address", required=True, help="containerd socket")
    import_cmd.add_argument("--snapshotter", help="containerd snapshotter to unpack into (default: ctr's)")
    import_cmd.add_argument("names", nargs="*", metavar="NAME", help=", ".join(REFS) + " (default: all)")
    opts = parser.parse_args(argv)
    if set(opts.names) - set(REFS):
        parser.error(f"unknown image(s) {' '.join(sorted(set(opts.names) - set(REFS)))}")
    archives = build(opts.names or None)
    if opts.command == "import":
        import_into(opts.address, archives, snapshotter=opts.snapshotter)
    else:
        for name, path in archives.items():
            print(name, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
