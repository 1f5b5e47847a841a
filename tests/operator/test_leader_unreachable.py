"""The Lease elector when the API server is down or answers garbage: it keeps trying, it never raises.

An exception out of `renew_until_lost` used to end the renewing thread silently while kopf went on
reconciling; after the lease duration a standby took the Lease over and two replicas were active.
Real sockets: a closed port on 127.0.0.1, and a real HTTP server that answers with an HTML page.
"""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator

import kubernetes
import pytest

from kubecrawl_operator.cli import _keep_lease
from kubecrawl_operator.health import HealthState
from kubecrawl_operator.leader import LeaseConfig, LeaseElector


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def client(url: str) -> kubernetes.client.ApiClient:
    cfg = kubernetes.client.Configuration()
    cfg.host = url
    cfg.retries = 0
    return kubernetes.client.ApiClient(cfg)


class HtmlPage(http.server.BaseHTTPRequestHandler):
    def _answer(self) -> None:
        body = b"<html><body>502 Bad Gateway</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PATCH = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def garbage_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HtmlPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


CONFIG = LeaseConfig("ns", "kubecrawl-operator", "op-a", lease_duration=0.6, renew_deadline=0.4, retry_period=0.05)


def test_an_unreachable_api_server_is_a_failed_attempt_not_an_exception() -> None:
    elector = LeaseElector(client(f"http://127.0.0.1:{closed_port()}"), CONFIG)
    assert elector.try_acquire_or_renew() is False
    assert elector.holder is None


def test_an_answer_that_is_not_json_is_a_failed_attempt(garbage_server: str) -> None:
    elector = LeaseElector(client(garbage_server), CONFIG)
    assert elector.try_acquire_or_renew() is False


def test_a_leader_whose_api_server_goes_away_stops_kopf_instead_of_acting_on() -> None:
    elector = LeaseElector(client(f"http://127.0.0.1:{closed_port()}"), CONFIG)
    elector.last_renewal = elector._clock()  # as if it had just won the Lease
    lost, finished = threading.Event(), threading.Event()
    state = HealthState(lease="ns/kubecrawl-operator")
    keeper = threading.Thread(target=_keep_lease, args=(elector, lost, finished, state), daemon=True)
    keeper.start()
    assert lost.wait(10), "the keeper never noticed that it could not renew"
    finished.set()  # kopf has stopped: the keeper must not exit the test process
    keeper.join(10)
    assert not keeper.is_alive()
    assert state.role == "stopping"


def test_a_keeper_that_fails_unexpectedly_counts_as_a_lost_lease() -> None:
    class Broken:
        config = CONFIG

        def renew_until_lost(self, stop: threading.Event) -> bool:
            raise KeyError("metadata")

    lost, finished = threading.Event(), threading.Event()
    state = HealthState(lease="ns/kubecrawl-operator")
    finished.set()
    _keep_lease(Broken(), lost, finished, state)
    assert lost.is_set()
    assert state.role == "stopping"
