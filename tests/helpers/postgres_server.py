"""A real PostgreSQL (Debian's ``postgresql`` package) on a free port of 127.0.0.1, in a temp dir.

``initdb`` and ``postgres`` refuse to run as root: as root they run as the ``postgres`` user the
package creates (or ``nobody``), through ``runuser``. Password authentication over TCP, as a real
deployment has it; ``stop()``/``start()`` keep the port and the data (a database that goes away).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.redis_server import free_port

USER = "kubecrawl"
PASSWORD = "s3cret-pw"


def pg_bindir() -> Path:
    """The newest installed PostgreSQL's bin dir; installed with apt-get when missing (as root)."""

    def found() -> Path | None:
        dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2]))
        if dirs and os.path.exists(os.path.join(dirs[-1], "initdb")):
            return Path(dirs[-1])
        initdb = shutil.which("initdb")
        return Path(initdb).resolve().parent if initdb else None

    where = found()
    if where is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", "postgresql"],
            check=False,
            capture_output=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
        where = found()
    if where is None:
        pytest.fail("PostgreSQL is not installed and could not be installed (apt-get install postgresql)")
    return where


def _run_as() -> dict[str, Any]:
    """Popen arguments that run the server as an unprivileged user when we are root (signals reach it directly)."""
    if os.geteuid() != 0:
        return {}
    for name in ("postgres", "nobody"):
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            continue
        return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
    pytest.fail("running as root and no postgres/nobody user to run PostgreSQL as")


class PostgresServer:
    """One PostgreSQL cluster. ``url`` (with the password), ``connect()``, ``stop()``, ``start()``."""

    __test__ = False

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.data = workdir / "data"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.bindir = pg_bindir()
        self.prefix = _run_as()

    @property
    def url(self) -> str:
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/postgres"

    def _own(self, path: Path) -> None:
        if self.prefix:
            os.chown(path, self.prefix["user"], self.prefix["group"])

    def init(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o755)
        for p in self.workdir.parents:  # the unprivileged user must reach the dir (pytest's tmp is 0700)
            if p == Path("/"):
                break
            if p.stat().st_uid == 0 and not (p.stat().st_mode & 0o001):
                os.chmod(p, p.stat().st_mode | 0o001)
        pwfile = self.workdir / "pw"
        pwfile.write_text(PASSWORD + "\n")
        self._own(self.workdir)
        self._own(pwfile)
        done = subprocess.run(
            [
                str(self.bindir / "initdb"), "-D", str(self.data), "-U", USER,
                "--pwfile", str(pwfile), "--auth-host=scram-sha-256", "--auth-local=trust",
                "--no-sync", "-E", "UTF8", "--locale=C",
            ],
            capture_output=True,
            **self.prefix,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}): {done.stderr.decode(errors='replace')[-2000:]}")

    def start(self, deadline_s: float = 60.0) -> PostgresServer:
        if not self.data.exists():
            self.init()
        self.proc = subprocess.Popen(
            [
                str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port),
                "-k", str(self.workdir), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                "-c", "full_page_writes=off",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(self.workdir / "postgres.log", "ab"),  # noqa: SIM115 - the server's log, for failures
            **self.prefix,
        )  # fmt: skip
        import psycopg

        deadline = time.monotonic() + deadline_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited: {(self.workdir / 'postgres.log').read_text()[-2000:]}")
            try:
                psycopg.connect(self.url, connect_timeout=2).close()
                return self
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def connect(self):  # type: ignore[no-untyped-def]
        import psycopg

        return psycopg.connect(self.url, autocommit=True)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown (SIGTERM would wait for clients)
            self.proc.wait(timeout=60)
        self.proc = None


@pytest.fixture
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.fail("psycopg is not installed: pip install -e 'worker[dev,postgres]' (scripts/setup.sh does)")
    server = PostgresServer(tmp_path_factory.mktemp("pg")).start()
    try:
        yield server
    finally:
        server.stop()
