"""A real S3-compatible server for the s3:// feed tests: SeaweedFS's ``weed server -s3`` on free ports.

``weed`` is built once from SeaweedFS's Go module by ``tests/helpers/build_seaweedfs.sh`` and cached
(``make test`` builds it first; docs/testing.md). Every port the server opens (master, volume, filer,
S3, and their gRPC ports) is a free one, everything binds to 127.0.0.1, telemetry is off, and the S3
API has one identity whose keys the tests pass to kubecrawl as ``AWS_ACCESS_KEY_ID``/``..._SECRET``.
Without Go (and no cached binary) the tests that need it are skipped, and CI fails on a skip.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .redis_server import free_port

BUILD_SCRIPT = Path(__file__).resolve().parent / "build_seaweedfs.sh"
ACCESS_KEY = "kubecrawl-test"
SECRET_KEY = "kubecrawl-test-secret-0123456789"
REGION = "us-east-1"


def weed_binary(build_timeout: float = 3600.0) -> str:
    """The cached ``weed``, built first when missing; skips the test when Go is not installed."""
    path = subprocess.run(["bash", str(BUILD_SCRIPT), "print-bin"], check=True, capture_output=True, text=True)
    binary = path.stdout.strip()
    if os.access(binary, os.X_OK):
        return binary
    built = subprocess.run(["bash", str(BUILD_SCRIPT)], timeout=build_timeout, capture_output=True, text=True)
    if built.returncode == 3:
        pytest.skip(f"Go is not installed: cannot build SeaweedFS ({BUILD_SCRIPT})")
    if built.returncode != 0 or not os.access(binary, os.X_OK):
        raise RuntimeError(f"{BUILD_SCRIPT} failed ({built.returncode}): {built.stderr[-3000:]}")
    return binary


class SeaweedS3:
    """One ``weed server -s3``; ``restart()`` keeps its ports and data. ``endpoint``, ``env``, ``store()``."""

    __test__ = False

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.data = workdir / "data"
        self.log_path = workdir / "weed.log"
        names = ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3", "s3_grpc")
        self.ports = {n: free_port() for n in names}
        self.proc: subprocess.Popen[bytes] | None = None
        self.binary = weed_binary()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def env(self) -> dict[str, str]:
        """The standard AWS variables kubecrawl reads, for this server."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL": self.endpoint,
        }

    def _config(self) -> Path:
        cfg = self.workdir / "s3.json"
        identity = {
            "name": "kubecrawl",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        }
        cfg.write_text(json.dumps({"identities": [identity]}))
        return cfg

    def start(self, deadline_s: float = 120.0) -> SeaweedS3:
        self.data.mkdir(parents=True, exist_ok=True)
        p = self.ports
        args = [
            self.binary, "server",
            "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={self.data}",
            f"-master.port={p['master']}", f"-master.port.grpc={p['master_grpc']}", "-master.telemetry=false",
            "-master.volumeSizeLimitMB=64",
            f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume_grpc']}", "-volume.max=100",
            "-filer", f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer_grpc']}",
            "-s3", f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3_grpc']}", f"-s3.config={self._config()}",
            "-s3.port.iceberg=0", "-s3.port.lance=0",
        ]  # fmt: skip
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child holds it
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        log.close()
        self._wait_ready(deadline_s)
        return self

    def store(self, bucket: str) -> Any:
        from datetime import timedelta

        from obstore.store import S3Store

        return S3Store(
            bucket,
            config={
                "endpoint": self.endpoint,
                "access_key_id": ACCESS_KEY,
                "secret_access_key": SECRET_KEY,
                "region": REGION,
                "virtual_hosted_style_request": False,
            },
            client_options={"allow_http": True, "timeout": timedelta(seconds=10)},
            retry_config={"max_retries": 0, "retry_timeout": timedelta(seconds=5)},
        )

    def _wait_ready(self, deadline_s: float) -> None:
        """Polls until a PUT and a GET of a probe object work (master, volume, filer and S3 all up)."""
        import obstore

        deadline = time.monotonic() + deadline_s
        store = self.store("kubecrawl-probe")
        last: Exception | None = None
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                obstore.put(store, "probe", b"ok")
                if bytes(obstore.get(store, "probe").bytes()) == b"ok":
                    return
            except Exception as exc:  # not up yet: connection refused, 5xx while volumes are assigned
                last = exc
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"SeaweedFS S3 on {self.endpoint} not ready in {deadline_s}s: {last} {self.log_tail()}"
                )
            time.sleep(0.2)

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def objects(self, bucket: str, prefix: str = "") -> dict[str, bytes]:
        """Every object under ``prefix``: key → content."""
        import obstore

        store = self.store(bucket)
        out: dict[str, bytes] = {}
        try:
            # the prefix is applied here, not by the server: SeaweedFS lists nothing for a prefix that
            # is not a whole path segment ("items" for "items-000001.jsonl" at the bucket's root)
            for chunk in obstore.list(store):
                for meta in chunk:
                    if meta["path"].startswith(prefix):
                        out[meta["path"]] = bytes(obstore.get(store, meta["path"]).bytes())
        except Exception as exc:  # the bucket is created by the first upload
            if "NoSuchBucket" not in str(exc):
                raise
        return out


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    server = SeaweedS3(tmp_path_factory.mktemp("seaweedfs")).start()
    try:
        yield server
    finally:
        server.stop()
