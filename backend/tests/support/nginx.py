"""A real nginx (Debian's package) in front of a test API: the production site template rendered for loopback.

The site file is ``deployment/nginx/dantaro-api.conf.template`` itself, rendered with ``string.Template`` exactly
as ``envsubst`` renders it for production (only ``${DANTARO_*}`` names are replaced; nginx's own ``$variables`` stay),
plus ``deployment/nginx/dantaro-http.conf`` in the http context. A self-signed certificate is made with ``openssl``.
"""

from __future__ import annotations

import os
import signal
import string
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.network import free_port, wait_for_port
from tests.support.paths import DEPLOYMENT_DIR
from tests.support.services import require_executable

NGINX_DIR = DEPLOYMENT_DIR / "nginx"
MAIN_CONF = """
{user}
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {root}/access.log;
    client_body_temp_path {root}/tmp/body;
    proxy_temp_path {root}/tmp/proxy;
    fastcgi_temp_path {root}/tmp/fastcgi;
    uwsgi_temp_path {root}/tmp/uwsgi;
    scgi_temp_path {root}/tmp/scgi;
    include {http_conf};
    include {root}/site.conf;
}}
"""


def self_signed_certificate(root: Path) -> tuple[Path, Path]:
    """(certificate, key) for CN=localhost, made with openssl, valid one day."""
    openssl = require_executable("openssl", install_hint="apt-get install openssl")
    cert, key = root / "cert.pem", root / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def render_site(variables: dict[str, str]) -> str:
    """The production site template with ``variables`` substituted (as ``envsubst`` with that variable list)."""
    return string.Template((NGINX_DIR / "dantaro-api.conf.template").read_text()).safe_substitute(variables)


@dataclass
class Nginx:
    """nginx serving the rendered site on free loopback ports, proxying to ``upstream``."""

    root: Path
    upstream: str
    header_timeout_s: int = 2
    http_port: int = 0
    https_port: int = 0
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Nginx:
        """Render the configuration, start nginx in the foreground (as a child) and wait for both ports."""
        binary = require_executable("nginx", install_hint="apt-get install nginx")
        self.http_port, self.https_port = free_port(), free_port()
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        cert, key = self_signed_certificate(self.root)
        site = render_site({
            "DANTARO_SERVER_NAME": "localhost", "DANTARO_TLS_CERT": str(cert), "DANTARO_TLS_KEY": str(key),
            "DANTARO_HTTP_PORT": str(self.http_port), "DANTARO_HTTPS_PORT": str(self.https_port),
            "DANTARO_UPSTREAM": self.upstream, "DANTARO_HEADER_TIMEOUT_S": str(self.header_timeout_s),
        })  # fmt: skip
        (self.root / "site.conf").write_text(site)
        user = "user root root;" if os.geteuid() == 0 else ""
        conf = self.root / "nginx.conf"
        conf.write_text(MAIN_CONF.format(user=user, root=self.root, http_conf=NGINX_DIR / "dantaro-http.conf"))
        self.process = subprocess.Popen([binary, "-p", str(self.root), "-c", str(conf)], stderr=subprocess.PIPE)
        for port in (self.http_port, self.https_port):
            wait_for_port(port, timeout_s=15)
        return self

    def stop(self) -> None:
        """Stop nginx gracefully (SIGQUIT), then hard."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()

    def error_log(self) -> str:
        """nginx's error log so far."""
        path = self.root / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""


def wait_closed(sock: object, *, timeout_s: float) -> float:
    """Seconds until the peer closed ``sock`` (recv returned b'' or an error), or ``timeout_s`` if it never did."""
    import socket as socket_module

    assert isinstance(sock, socket_module.socket)
    started = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - started < timeout_s:
        try:
            if sock.recv(4096) == b"":
                return time.monotonic() - started
        except TimeoutError:
            continue
        except OSError:
            return time.monotonic() - started
    return timeout_s
