#!/usr/bin/env python3
"""A throwaway PostgreSQL for the tests (Z2JH's ``hub.db.type: postgres``), from Debian's packages.

    python3 -m ci.dev.postgres install    # apt-get install postgresql + libpq-dev when initdb/pg_config are missing
    python3 -m ci.dev.postgres check      # exit 0 when the binaries are there

``TempPostgres`` (used by the unit and end-to-end fixtures) runs ``initdb`` in a temporary directory and
``postgres`` on a free 127.0.0.1 port with its unix socket in that directory, trust authentication, and no fsync (it
is thrown away). For pods (a hub on the real node), ``TempPostgres(listen=<node IP>, port=<one of the ports the node
lets pods reach>, clients=<pod CIDR>)`` listens there too and asks that network for a random password (in
``url(host=...)``): every user's server is a pod there. PostgreSQL refuses to run as
root: as root the server runs as the ``postgres`` system user that Debian's package creates (``runuser``), falling
back to ``nobody``.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PACKAGES = ["postgresql", "libpq-dev"]  # the server (initdb, postgres) and pg_config (psycopg2's build)


def bindir() -> Path | None:
    """Where initdb/postgres are: ``pg_config --bindir`` (Debian: /usr/lib/postgresql/<v>/bin), or PATH."""
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True).stdout.strip()
        if out and (Path(out) / "initdb").exists():
            return Path(out)
    for root in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (root / "initdb").exists():
            return root
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def installed() -> bool:
    return bindir() is not None and shutil.which("pg_config") is not None


def install() -> int:
    """Install Debian's PostgreSQL when missing (needs root and apt-get); a no-op when present."""
    if installed():
        return 0
    if shutil.which("apt-get") is None:
        print("ci/dev/postgres.py: PostgreSQL is missing and apt-get is not available; install the server "
              f"packages ({', '.join(PACKAGES)}) for the PostgreSQL tests", file=sys.stderr)
        return 1
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*sudo, "apt-get", "update", "-q"], check=True, env=env)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES], check=True,
                   env=env)
    return 0 if installed() else 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_as() -> tuple[list[str], int | None, int | None]:
    """The command prefix, uid and gid to run the server with (not root)."""
    if os.geteuid() != 0:
        return [], None, None
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return ["runuser", "-u", name, "--"], entry.pw_uid, entry.pw_gid
    raise RuntimeError("running as root and neither the postgres nor the nobody user exists")


class TempPostgres:
    """``with TempPostgres() as pg: pg.url("dbname")``; ``pg.create_database(name)`` makes a fresh one."""

    def __init__(self, listen: str | None = None, port: int | None = None, clients: str | None = None) -> None:
        found = bindir()
        if found is None:
            raise RuntimeError("PostgreSQL is not installed (run `python3 -m ci.dev.postgres install`)")
        self.bin = found
        self.listen, self.clients = listen, clients
        self.password = secrets.token_hex(16)  # what a pod must send (loopback stays trusted)
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="jhds-pg-"))
        self.proc: subprocess.Popen | None = None

    def url(self, database: str = "postgres", host: str = "127.0.0.1") -> str:
        user = "postgres" if host == "127.0.0.1" else f"postgres:{self.password}"
        return f"postgresql://{user}@{host}:{self.port}/{database}"

    def start(self, timeout: float = 60) -> TempPostgres:
        prefix, uid, gid = _run_as()
        data = self.dir / "data"
        data.mkdir()
        if uid is not None:
            os.chown(self.dir, uid, gid)
            os.chown(data, uid, gid)
        password_file = self.dir / "password"
        password_file.write_text(self.password)
        if uid is not None:
            os.chown(password_file, uid, gid)
        subprocess.run([*prefix, str(self.bin / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                        "--pwfile", str(password_file), "-E", "UTF8", "--no-sync", "--locale=C"],
                       check=True, capture_output=True)
        if self.clients:
            with open(data / "pg_hba.conf", "a") as hba:
                hba.write(f"host all all {self.clients} scram-sha-256\n")
        addresses = ",".join(["127.0.0.1", *([self.listen] if self.listen else [])])
        log = open(self.dir / "postgres.log", "ab")
        if uid is not None:
            os.chown(self.dir / "postgres.log", uid, gid)
        self.proc = subprocess.Popen(
            [*prefix, str(self.bin / "postgres"), "-D", str(data), "-p", str(self.port), "-k", str(self.dir),
             "-c", f"listen_addresses={addresses}", "-c", "fsync=off", "-c", "synchronous_commit=off",
             "-c", "full_page_writes=off", "-c", "max_connections=100"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited: {(self.dir / 'postgres.log').read_text()[-2000:]}")
            ready = subprocess.run([str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                                   capture_output=True)
            if ready.returncode == 0:
                return self
            time.sleep(0.2)
        raise TimeoutError(f"postgres not ready after {timeout}s")

    def create_database(self, name: str) -> str:
        """A new, empty database; returns its SQLAlchemy URL (psycopg2)."""
        subprocess.run([str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                        name], check=True, capture_output=True)
        return self.url(name)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGINT)  # fast shutdown
                self.proc.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> TempPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> int:
    command = sys.argv[1] if len(sys.argv) > 1 else "check"
    if command == "install":
        return install()
    if command == "check":
        return 0 if installed() else 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
