"""The production nginx site in front of a real API on loopback: TLS, the redirect, bounded requests, real clients.

nginx (Debian's package) and openssl are installed by ``.ci/run`` when missing; without them the test fails under
``DANTARO_REQUIRE_SERVICES=1`` and skips otherwise.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
from collections.abc import Iterator

import httpx2
import pytest

from tests.support.api import DEV_AUTH
from tests.support.nginx import Nginx, wait_closed
from tests.support.processes import ApiServer, dantaro_env, log_events

CLIENT_ADDRESS = "127.0.0.2"  # the test's client binds another loopback address: nginx itself is 127.0.0.1


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApiServer, Nginx]]:
    root = tmp_path_factory.mktemp("nginx")
    env = dantaro_env(root / "data", DANTARO_FORWARDED_ALLOW_IPS="127.0.0.1")
    api = ApiServer(env, log_path=root / "api.log").start()
    nginx = Nginx(root / "nginx", upstream=f"127.0.0.1:{api.port}")
    (root / "nginx").mkdir()
    try:
        nginx.start()
        yield api, nginx
    finally:
        nginx.stop()
        api.kill()


def _https(nginx: Nginx, *, local_address: str | None = None) -> httpx2.Client:
    transport = httpx2.HTTPTransport(verify=False, local_address=local_address)
    return httpx2.Client(base_url=f"https://localhost:{nginx.https_port}", transport=transport, timeout=10)


def test_https_answers_with_hsts_and_http_redirects(stack: tuple[ApiServer, Nginx]) -> None:
    _, nginx = stack
    with _https(nginx) as client:
        response = client.get("/health")
    assert response.status_code == 200 and response.json()["status"] == "ok"
    assert response.headers["strict-transport-security"].startswith("max-age=63072000")
    plain = httpx2.get(f"http://localhost:{nginx.http_port}/health?x=1", timeout=10)
    assert plain.status_code == 301 and plain.headers["location"] == "https://localhost/health?x=1"


def _handshake(nginx: Nginx, version: str) -> subprocess.CompletedProcess[str]:
    """openssl s_client offering exactly ``version`` (and any cipher, so only the server can refuse)."""
    return subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{nginx.https_port}", version, "-cipher", "DEFAULT@SECLEVEL=0"],
        input="", capture_output=True, text=True, timeout=20, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("version", "accepted"), [("-tls1", False), ("-tls1_1", False), ("-tls1_2", True), ("-tls1_3", True)]
)
def test_only_modern_tls_is_offered(stack: tuple[ApiServer, Nginx], version: str, accepted: bool) -> None:
    _, nginx = stack
    result = _handshake(nginx, version)
    assert (result.returncode == 0 and "Cipher is (NONE)" not in result.stdout) is accepted, result.stdout[-400:]


def test_a_slow_header_client_is_cut_off_while_health_keeps_answering(stack: tuple[ApiServer, Nginx]) -> None:
    _, nginx = stack
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", nginx.https_port), timeout=5)
    slow = context.wrap_socket(raw, server_hostname="localhost")
    try:
        slow.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n")  # ...and never the blank line
        started = time.monotonic()
        with _https(nginx) as client:
            assert client.get("/health").status_code == 200  # others are served meanwhile
        closed_after_s = wait_closed(slow, timeout_s=nginx.header_timeout_s + 5)
        assert closed_after_s < nginx.header_timeout_s + 3, f"still open after {time.monotonic() - started:.1f} s"
    finally:
        slow.close()


def test_an_oversize_body_gets_413_before_the_api(stack: tuple[ApiServer, Nginx]) -> None:
    api, nginx = stack
    with _https(nginx) as client:
        response = client.post("/api/v1/bundle", content=b"{" + b" " * 100_000 + b"}", headers=DEV_AUTH)
    assert response.status_code == 413
    assert not [e for e in log_events(api.log_text()) if e.get("event") == "request" and e.get("method") == "POST"]


def test_metrics_are_not_public(stack: tuple[ApiServer, Nginx]) -> None:
    api, nginx = stack
    with _https(nginx) as client:
        assert client.get("/metrics").status_code == 404
    assert httpx2.get(f"{api.base_url}/metrics", timeout=10).status_code == 200  # the private address still has it


def test_the_api_logs_the_client_address_nginx_saw(stack: tuple[ApiServer, Nginx]) -> None:
    api, nginx = stack
    with _https(nginx, local_address=CLIENT_ADDRESS) as client:
        spoofed = {"X-Forwarded-For": "203.0.113.7", "X-Request-ID": "nginx-test-1"}
        assert client.get("/health", headers=spoofed).status_code == 200
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        logged = [e for e in log_events(api.log_text()) if e.get("request_id") == "nginx-test-1"]
        if logged:
            break
        time.sleep(0.1)
    assert logged and logged[0]["client"] == CLIENT_ADDRESS  # neither nginx's own address nor the claimed one


def test_the_rendered_site_passes_nginx_t(stack: tuple[ApiServer, Nginx]) -> None:
    _, nginx = stack
    checked = subprocess.run(
        ["nginx", "-t", "-p", str(nginx.root), "-c", str(nginx.root / "nginx.conf")],
        capture_output=True, text=True, timeout=20, check=False,
    )  # fmt: skip
    assert checked.returncode == 0 and "test is successful" in checked.stderr, checked.stderr
