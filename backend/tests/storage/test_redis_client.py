"""The API's Redis client (``app.storage.redis_client`` on ``app.storage.resp``) against the real Redis, checked with
redis-py as an independent reader, and against loopback servers that misbehave on purpose."""

from __future__ import annotations

import os
import resource
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import redis

from app.redis_url import RedisAddress, parse_redis_url
from app.storage.redis_client import RedisClient, Script, Subscription
from app.storage.redis_py import RedisPyClient
from app.storage.resp import RedisConnectionError, RedisReplyError, RespConnection, encode_command
from tests.support.network import free_port


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("redis://127.0.0.1:6379/0", RedisAddress()),
        ("redis://cache.internal", RedisAddress(host="cache.internal")),
        ("redis://:s%40cret@h:6380/2", RedisAddress(host="h", port=6380, db=2, password="s@cret")),
        ("redis://app:pw@h/1", RedisAddress(host="h", db=1, username="app", password="pw")),
        ("redis://h?db=3", RedisAddress(host="h", db=3)),
        ("redis://h/1?db=3", RedisAddress(host="h", db=3)),  # the query wins, as in redis-py (the worker's client)
        ("redis://:@h", RedisAddress(host="h")),  # an empty password is not sent
        ("rediss://h:6390", RedisAddress(host="h", port=6390, tls=True)),
        (
            "rediss://h?ssl_ca_certs=/etc/ca.pem&ssl_cert_reqs=none",
            RedisAddress(host="h", tls=True, ca_file="/etc/ca.pem", cert_reqs="none"),
        ),
        ("unix:///run/redis.sock?db=4", RedisAddress(unix_path="/run/redis.sock", db=4)),
        ("unix://:pw@/run/my%20redis.sock", RedisAddress(unix_path="/run/my redis.sock", password="pw")),
    ],
)
def test_urls_parse_into_addresses(url: str, address: RedisAddress) -> None:
    assert parse_redis_url(url) == address


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://u:hunter2@h:6379", "starts with redis://"),
        ("//:hunter2@h:6379", "starts with redis://"),
        ("redis://u:hunter2@h:port/0", "port in the Redis URL"),
        ("redis://:hun/ter2@h:6379", "port in the Redis URL"),  # an unencoded "/" cuts the password
        ("redis://:hunter2@h/zero", "must be a number"),
        ("redis://:hunter2@h?socket_timeout=1", "unsupported option"),
        ("redis://:hunter2@h?ssl_ca_certs=/ca.pem", "unsupported option"),  # TLS options need rediss://
        ("rediss://:hunter2@h?ssl_cert_reqs=maybe", "must be one of none, optional, required"),
        ("unix://", "needs the socket path"),
    ],
)
def test_bad_urls_say_what_to_fix_without_the_password(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        parse_redis_url(url)
    assert "hunter2" not in str(raised.value) and "hun" not in str(raised.value)


def test_an_address_keeps_its_password_out_of_its_repr() -> None:
    assert "hunter2" not in repr(parse_redis_url("redis://app:hunter2@h/0"))


@pytest.mark.parametrize(
    ("args", "wire"),
    [
        (["PING"], b"*1\r\n$4\r\nPING\r\n"),
        (
            ["SET", "k", b"\x00\r\n", "PX", 1500],
            b"*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\n\x00\r\n\r\n$2\r\nPX\r\n$4\r\n1500\r\n",
        ),
        (["ZADD", "z", 2.5, "é"], b"*4\r\n$4\r\nZADD\r\n$1\r\nz\r\n$3\r\n2.5\r\n$2\r\n\xc3\xa9\r\n"),
    ],
)
def test_commands_encode_as_arrays_of_bulk_strings(args: list[bytes | str | int | float], wire: bytes) -> None:
    assert encode_command(args) == wire


def test_a_bool_argument_is_refused() -> None:
    with pytest.raises(TypeError, match="bool"):
        encode_command(["SET", "k", True])


@pytest.mark.redis
def test_commands_pipelines_and_transactions_reach_redis(
    resp_client: RedisClient, redis_client: redis.Redis, redis_prefix: str
) -> None:
    key, big = f"{redis_prefix}:k", secrets.token_bytes(3_000_000)  # many receive chunks
    assert resp_client.execute("GET", key) is None
    resp_client.execute("SET", key, big, "PX", 60_000)
    assert redis_client.get(key) == big and resp_client.execute("GET", key) == big
    assert 0 < int(redis_client.pttl(key)) <= 60_000
    counter = f"{redis_prefix}:n"
    assert resp_client.pipeline([["INCRBY", counter, 2], ["EXPIRE", counter, 30], ["INCRBY", counter, 0]]) == [2, 1, 2]
    replies = resp_client.pipeline([["SET", key, "a"], ["RPUSH", f"{redis_prefix}:l", "x", "y"]], transaction=True)
    assert replies == [b"OK", 2] and redis_client.lrange(f"{redis_prefix}:l", 0, -1) == [b"x", b"y"]
    assert resp_client.ping()


@pytest.mark.redis
def test_an_error_reply_raises_and_the_connection_stays_usable(resp_client: RedisClient, redis_prefix: str) -> None:
    key = f"{redis_prefix}:text"
    resp_client.execute("SET", key, "not a number")
    with pytest.raises(RedisReplyError, match="not an integer"):
        resp_client.pipeline([["INCR", key], ["GET", key]])
    assert resp_client.execute("GET", key) == b"not a number"
    with pytest.raises(RedisReplyError, match="EXECABORT"):  # a queued command Redis refused: nothing ran
        resp_client.pipeline([["SET", key, "changed"], ["NOSUCHCOMMAND"]], transaction=True)
    assert resp_client.execute("GET", key) == b"not a number"


@pytest.mark.redis
def test_a_script_is_loaded_once_then_run_by_its_digest(
    resp_client: RedisClient, redis_client: redis.Redis, redis_prefix: str
) -> None:
    script = Script(f"-- {secrets.token_hex(8)}\nreturn redis.call('INCRBY', KEYS[1], ARGV[1])")
    assert redis_client.script_exists(script.sha1) == [False]
    key = f"{redis_prefix}:s"
    assert resp_client.run_script(script, keys=[key], args=[5]) == 5  # NOSCRIPT, then EVAL
    assert redis_client.script_exists(script.sha1) == [True]
    assert resp_client.run_script(script, keys=[key], args=[2]) == 7


@pytest.mark.redis
def test_a_subscription_receives_what_is_published(
    resp_client: RedisClient, redis_client: redis.Redis, redis_prefix: str
) -> None:
    subscription = resp_client.subscribe(f"{redis_prefix}:runs")
    try:
        started_s = time.monotonic()
        assert subscription.get_message(timeout_s=0.2) is None
        assert 0.15 < time.monotonic() - started_s < 1.0
        assert redis_client.publish(f"{redis_prefix}:runs", b"first") == 1
        redis_client.publish(f"{redis_prefix}:runs", b"second")
        assert subscription.get_message(timeout_s=2.0) == b"first"
        assert subscription.get_message(timeout_s=2.0) == b"second"
    finally:
        subscription.close()


@pytest.mark.redis
def test_a_connection_the_server_closed_is_replaced_without_an_error(
    resp_client: RedisClient, redis_client: redis.Redis
) -> None:
    client_id = resp_client.execute("CLIENT", "ID")  # the pooled connection
    assert redis_client.client_kill_filter(_id=client_id) == 1  # as a Redis restart would
    assert resp_client.ping()  # even with retries=0: the command never ran on the closed connection
    assert resp_client.execute("CLIENT", "ID") != client_id


@pytest.mark.redis
def test_a_database_number_and_a_wrong_password_are_sent_on_connect(redis_url: str, redis_prefix: str) -> None:
    address = parse_redis_url(redis_url)
    client = RedisClient(RedisAddress(host=address.host, port=address.port, db=7), timeout_s=2.0)
    other = redis.Redis(host=address.host, port=address.port, db=7)
    try:
        client.execute("SET", f"{redis_prefix}:db7", "here", "EX", 30)
        assert other.get(f"{redis_prefix}:db7") == b"here"
    finally:
        other.delete(f"{redis_prefix}:db7")
        other.close()
        client.close()
    refused = RedisClient(RedisAddress(host=address.host, port=address.port, password="wrong"), timeout_s=2.0)
    with pytest.raises(RedisReplyError, match=r"connecting to Redis: .*AUTH"):
        refused.ping()


@pytest.fixture
def loopback() -> Iterator[Callable[[Callable[[socket.socket], None]], int]]:
    """Start a one-connection-at-a-time server whose handler misbehaves; returns its port."""
    servers: list[socket.socket] = []

    def start(handle: Callable[[socket.socket], None]) -> int:
        server = socket.create_server(("127.0.0.1", 0))
        servers.append(server)

        def serve() -> None:
            while True:
                try:
                    conn, _ = server.accept()
                except OSError:
                    return
                with conn:
                    handle(conn)

        threading.Thread(target=serve, daemon=True).start()
        return int(server.getsockname()[1])

    yield start
    for server in servers:
        server.close()


def _silent(conn: socket.socket) -> None:
    conn.recv(1024)
    time.sleep(1.5)


def _not_redis(conn: socket.socket) -> None:
    conn.recv(1024)
    conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")


def test_a_silent_server_costs_one_timeout(loopback: Callable[[Callable[[socket.socket], None]], int]) -> None:
    client = RedisClient.from_url(f"redis://127.0.0.1:{loopback(_silent)}", timeout_s=0.3)
    started_s = time.monotonic()
    with pytest.raises(RedisConnectionError, match="timed out on receive"):
        client.ping()
    assert 0.25 < time.monotonic() - started_s < 1.0


def test_a_server_that_is_not_redis_is_a_connection_error(
    loopback: Callable[[Callable[[socket.socket], None]], int],
) -> None:
    client = RedisClient.from_url(f"redis://127.0.0.1:{loopback(_not_redis)}", timeout_s=1.0)
    with pytest.raises(RedisConnectionError, match="not a RESP reply"):
        client.ping()


def test_nothing_listening_is_a_connection_error_naming_the_address() -> None:
    port = free_port()
    client = RedisClient.from_url(f"redis://127.0.0.1:{port}", timeout_s=0.5, retries=2)
    with pytest.raises(RedisConnectionError, match=f"cannot connect to Redis at 127.0.0.1:{port}"):
        client.execute("GET", "k")


@pytest.mark.redis
def test_the_workers_client_reports_failures_as_the_apis_does(redis_url: str, redis_prefix: str) -> None:
    worker = RedisPyClient.from_url(redis_url, timeout_s=2.0)
    try:
        worker.execute("SET", f"{redis_prefix}:w", "text", "EX", 30)
        with pytest.raises(RedisReplyError, match="not an integer"):
            worker.pipeline([["INCR", f"{redis_prefix}:w"]])
    finally:
        worker.execute("DEL", f"{redis_prefix}:w")
        worker.close()
    dead = RedisPyClient.from_url(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.5, retries=0)
    with pytest.raises(RedisConnectionError):
        dead.execute("PING")


def _answers_ping_then_drops(received: list[bytes]) -> Callable[[socket.socket], None]:
    def handle(conn: socket.socket) -> None:
        while data := conn.recv(1024):
            received.append(data)
            if data != encode_command(["PING"]):
                return  # the command "ran" here; the connection then dies before its reply
            conn.sendall(b"+PONG\r\n")

    return handle


def test_a_command_whose_pooled_connection_died_unanswered_is_not_sent_again(
    loopback: Callable[[Callable[[socket.socket], None]], int],
) -> None:
    received: list[bytes] = []
    client = RedisClient.from_url(f"redis://127.0.0.1:{loopback(_answers_ping_then_drops(received))}", timeout_s=1.0)
    assert client.ping()  # the connection goes back to the pool, alive
    with pytest.raises(RedisConnectionError, match="closed the connection"):
        client.execute("INCRBY", "counter", 1)
    time.sleep(0.2)
    assert received == [encode_command(["PING"]), encode_command(["INCRBY", "counter", 1])]


@pytest.mark.redis
def test_an_idle_subscription_pings_and_keeps_receiving(
    resp_client: RedisClient, redis_client: redis.Redis, redis_prefix: str
) -> None:
    subscription = resp_client.subscribe(f"{redis_prefix}:runs", health_check_s=0.0)
    try:
        assert subscription.get_message(timeout_s=1.0) is None  # the PING's answer, consumed
        redis_client.publish(f"{redis_prefix}:runs", b"after the ping")
        assert subscription.get_message(timeout_s=2.0) == b"after the ping"
    finally:
        subscription.close()


def _confirms_then_ignores(conn: socket.socket) -> None:
    conn.recv(1024)
    conn.sendall(b"*3\r\n$9\r\nsubscribe\r\n$4\r\nruns\r\n:1\r\n")
    time.sleep(2.0)  # a PING gets no answer, as through a firewall that dropped the connection silently


def test_a_subscription_whose_ping_goes_unanswered_fails(
    loopback: Callable[[Callable[[socket.socket], None]], int],
) -> None:
    sock = socket.create_connection(("127.0.0.1", loopback(_confirms_then_ignores)), timeout=1.0)
    subscription = Subscription(RespConnection(sock), "runs", timeout_s=1.0, health_check_s=0.0, pong_wait_s=0.3)
    try:
        with pytest.raises(RedisConnectionError, match="PING got no answer"):
            for _ in range(20):
                assert subscription.get_message(timeout_s=0.1) is None
    finally:
        subscription.close()


@pytest.mark.redis
def test_a_subscription_works_on_a_descriptor_above_1023(
    resp_client: RedisClient, redis_client: redis.Redis, redis_prefix: str
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.fail(f"the descriptor limit ({hard}) is too low for this test: raise it to 1200 or more")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    held = [os.dup(0) for _ in range(1100)]  # the subscription's socket gets a number above select()'s 1023
    try:
        subscription = resp_client.subscribe(f"{redis_prefix}:runs")
        redis_client.publish(f"{redis_prefix}:runs", b"high")
        assert subscription.get_message(timeout_s=2.0) == b"high"
        subscription.close()
    finally:
        for descriptor in held:
            os.close(descriptor)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
