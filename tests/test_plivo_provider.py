"""The real Plivo SDK against the Plivo-compatible test server, over 127.0.0.1."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import urlsplit

import plivo.exceptions
import plivo.rest.client
import pytest
import requests
import requests.adapters
from hypothesis import given
from hypothesis import strategies as st

from pipelines.providers import (
    AmbiguousError,
    DryRunProvider,
    PermanentError,
    Provider,
    ProviderConfigError,
    RetryableError,
    SendRequest,
    mask_phone,
)
from pipelines.providers.base import MAX_DESTINATIONS, mask_phones_in
from pipelines.providers.dry_run import dry_run_uuid
from pipelines.providers.plivo import (
    PLIVO_API_BASE_URL,
    PlivoProvider,
    classify_status,
    normalize_base_url,
    parse_retry_after,
)
from pipelines.testing import PlivoTestServer

# A hung server must fail a test, not the whole run.
pytestmark = pytest.mark.timeout(30)

SRC = "+15550001111"
A, B, C = "+14155550101", "+14155550102", "+14155550103"
TIMEOUT = 0.5


@pytest.fixture(autouse=True)
def outgoing(monkeypatch) -> list[requests.PreparedRequest]:
    """Every HTTP request any test makes; one to anywhere but 127.0.0.1 fails the test."""
    seen: list[requests.PreparedRequest] = []
    lock = threading.Lock()
    real_send = requests.adapters.HTTPAdapter.send

    def spy(self, request, *args, **kwargs):
        with lock:
            seen.append(request)
        host = urlsplit(request.url).hostname
        if host != "127.0.0.1":
            raise AssertionError(f"a request left for {host}: {request.url}")
        return real_send(self, request, *args, **kwargs)

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", spy)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return seen


@pytest.fixture
def server():
    with PlivoTestServer() as srv:
        yield srv


def make_provider(
    server: PlivoTestServer, *, auth_token: str | None = None, **overrides
) -> PlivoProvider:
    kwargs = {"src": SRC, "base_url": server.base_url, "timeout": TIMEOUT, **overrides}
    return PlivoProvider(server.auth_id, auth_token or server.auth_token, **kwargs)


@pytest.fixture
def provider(server):
    prov = make_provider(server)
    yield prov
    prov.close()


def message_posts(outgoing) -> list[requests.PreparedRequest]:
    return [r for r in outgoing if "/Message/" in r.url]


# -- success ---------------------------------------------------------------------------------


def test_send_returns_one_uuid_per_destination(server, provider, outgoing):
    result = provider.send(SendRequest((A, B, C), "Your order shipped", "http://127.0.0.1:9/cb"))

    recorded = server.messages
    assert [m.dst for m in recorded] == [A, B, C]
    assert result.message_uuids == tuple(m.message_uuid for m in recorded)
    assert len(set(result.message_uuids)) == 3
    assert result.invalid_numbers == ()
    assert result.api_id == recorded[0].api_id
    assert {(m.src, m.text, m.url, m.method, m.log) for m in recorded} == {
        (SRC, "Your order shipped", "http://127.0.0.1:9/cb", "POST", "true")
    }
    # One request for the batch: destinations joined with '<', log as a string.
    [post] = message_posts(outgoing)
    body = json.loads(post.body)
    assert body["dst"] == f"{A}<{B}<{C}"
    assert body["log"] == "true"
    assert post.url == f"{server.base_url}/{server.auth_id}/Message/"


def test_send_without_callback_sends_no_url(server, provider, outgoing):
    provider.send(SendRequest((A,), "hi"))
    body = json.loads(message_posts(outgoing)[0].body)
    assert "url" not in body
    assert server.messages[0].url is None


def test_powerpack_instead_of_src(server):
    prov = make_provider(server, src=None, powerpack_uuid="pp-1234")
    prov.send(SendRequest((A,), "hi"))
    [message] = server.messages
    assert (message.src, message.powerpack_uuid) == (None, "pp-1234")


def test_invalid_numbers_are_reported_and_the_rest_queued(server, provider):
    server.set_invalid_numbers({B})
    uk = "+442071838750"
    result = provider.send(SendRequest((A, B, uk, C), "hi"))
    assert result.invalid_numbers == (B, uk)
    assert len(result.message_uuids) == 2
    assert [m.dst for m in server.messages] == [A, C]


def test_a_thousand_destinations_go_in_one_request(server, provider, outgoing):
    numbers = tuple(f"+1415555{i:04d}" for i in range(MAX_DESTINATIONS))
    result = provider.send(SendRequest(numbers, "hi"))
    assert len(result.message_uuids) == MAX_DESTINATIONS
    assert len(message_posts(outgoing)) == 1


def test_more_than_a_thousand_destinations_is_refused_before_sending(outgoing):
    numbers = tuple(f"+1415555{i:04d}" for i in range(MAX_DESTINATIONS + 1))
    with pytest.raises(ValueError, match="limit is 1000"):
        SendRequest(numbers, "hi")
    assert outgoing == []


@pytest.mark.parametrize("bad", ["4155550101", "+1415<+1416", "", "+1 415 555 0101"])
def test_send_request_wants_e164(bad):
    with pytest.raises(ValueError):
        SendRequest((bad,), "hi")


# -- failures --------------------------------------------------------------------------------


def test_wrong_token_is_permanent_with_the_providers_message(server):
    prov = make_provider(server, auth_token="not-the-token")
    with pytest.raises(PermanentError) as info:
        prov.send(SendRequest((A,), "hi"))
    assert info.value.status == 401
    assert info.value.message == "Authentication credentials invalid"
    assert server.messages == []


def test_no_valid_destination_is_a_permanent_400(server, provider):
    with pytest.raises(PermanentError) as info:
        provider.send(SendRequest(("+442071838750",), "hi"))
    assert info.value.status == 400
    assert "no valid destination" in info.value.message


@pytest.mark.parametrize(
    ("body", "missing"),
    [
        ({"dst": A, "text": "hi"}, "src"),
        ({"src": SRC, "text": "hi"}, "dst"),
        ({"src": SRC, "dst": A}, "text"),
    ],
)
def test_server_rejects_missing_parameters(server, body, missing):
    response = requests.post(
        f"{server.base_url}/{server.auth_id}/Message/",
        json=body,
        auth=(server.auth_id, server.auth_token),
        timeout=2,
    )
    assert response.status_code == 400
    assert missing in response.json()["error"]
    assert server.messages == []


def test_server_rejects_a_missing_text_through_the_sdk(server, provider):
    # SendRequest never has an empty text, so go through the SDK: it lets text=None through,
    # and must find the server's 400 in the shape it parses.
    client = provider.client()
    with pytest.raises(plivo.exceptions.ValidationError, match="Missing 'text'"):
        client.messages.create(src=SRC, dst=A, text=None)


def test_429_storm_is_retryable_with_retry_after(server, provider):
    server.throttle(2, retry_after=3)
    for _ in range(2):
        with pytest.raises(RetryableError) as info:
            provider.send(SendRequest((A,), "hi"))
        assert info.value.status == 429
        assert info.value.retry_after == 3.0
    assert provider.send(SendRequest((A,), "hi")).message_uuids
    assert len(server.messages) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retryable(server, provider, status):
    server.fail(1, status=status)
    with pytest.raises(RetryableError) as info:
        provider.send(SendRequest((A,), "hi"))
    assert info.value.status == status
    assert server.messages == []


def test_hang_is_ambiguous_and_the_server_kept_the_message(server, provider):
    server.hang(1)
    started = time.monotonic()
    with pytest.raises(AmbiguousError):
        provider.send(SendRequest((A,), "hi"))
    elapsed = time.monotonic() - started
    assert TIMEOUT <= elapsed < TIMEOUT + 1.5
    # The whole point: the provider may well have queued it.
    [message] = server.messages
    assert message.dst == A
    assert [r.hung for r in server.requests] == [True]
    # The next request is answered normally on a fresh connection.
    assert provider.send(SendRequest((B,), "hi")).message_uuids


def test_connection_refused_is_retryable(server, provider):
    provider.send(SendRequest((A,), "warm up the keep-alive connection"))
    server.refuse_connections()
    with pytest.raises(RetryableError, match="could not connect"):
        provider.send(SendRequest((B,), "hi"))
    server.accept_connections()
    provider.send(SendRequest((C,), "hi"))
    assert [m.dst for m in server.messages] == [A, C]


def test_nothing_listening_is_retryable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    prov = PlivoProvider(
        "MA" + "X" * 18, "token", src=SRC, base_url=f"http://127.0.0.1:{port}", timeout=TIMEOUT
    )
    with pytest.raises(RetryableError):
        prov.send(SendRequest((A,), "hi"))


def test_connection_dropped_after_sending_is_ambiguous():
    """A server that reads the whole request and hangs up: it may have acted on it."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    got: list[bytes] = []

    def read_then_hang_up() -> None:
        conn, _ = listener.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(
                next(
                    line.split(b":")[1]
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
            )
            while len(body) < length:
                body += conn.recv(65536)
            got.append(body)

    thread = threading.Thread(target=read_then_hang_up, daemon=True)
    thread.start()
    prov = PlivoProvider(
        "MA" + "X" * 18, "token", src=SRC, base_url=f"http://127.0.0.1:{port}", timeout=2
    )
    try:
        with pytest.raises(AmbiguousError, match="dropped"):
            prov.send(SendRequest((A,), "hi"))
    finally:
        thread.join(2)
        listener.close()
    assert json.loads(got[0])["dst"] == A


# -- base URL and threads --------------------------------------------------------------------


def test_every_request_from_every_thread_goes_to_the_base_url(server, provider, outgoing):
    threads, per_thread = 6, 5
    clients: dict[int, int] = {}
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def work(i: int) -> None:
        barrier.wait()  # all threads alive at once, so none reuses another's thread-local
        with lock:
            clients[threading.get_ident()] = id(provider.client())
        for j in range(per_thread):
            provider.send(SendRequest((f"+1415555{i:02d}{j:02d}",), f"hi {i}/{j}"))

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(threads)))

    posts = message_posts(outgoing)
    assert len(posts) == threads * per_thread
    assert all(p.url.startswith(server.base_url + "/") for p in posts)
    assert len(server.requests) == threads * per_thread
    assert len(server.messages) == threads * per_thread
    # One SDK client (and requests.Session) per worker thread.
    assert len(set(clients.values())) == threads
    # The SDK's own constant is untouched: no other client in the process is redirected.
    assert plivo.rest.client.PLIVO_API_BASE_URI == "https://api.plivo.com/v1/Account"


def test_two_providers_keep_their_own_base_urls():
    with PlivoTestServer() as one, PlivoTestServer() as two:
        make_provider(one).send(SendRequest((A,), "one"))
        make_provider(two).send(SendRequest((B,), "two"))
        assert [m.text for m in one.messages] == ["one"]
        assert [m.text for m in two.messages] == ["two"]


@pytest.mark.parametrize(
    "given_url",
    ["http://127.0.0.1:1", "http://127.0.0.1:1/", "http://127.0.0.1:1/v1/Account/"],
)
def test_base_url_is_normalized(given_url):
    assert normalize_base_url(given_url) == "http://127.0.0.1:1/v1/Account"


# -- logs and settings -----------------------------------------------------------------------


def test_logs_hold_no_token_and_only_masked_numbers(server, provider, caplog):
    caplog.set_level(logging.DEBUG)
    provider.send(SendRequest((A, B), "hi"))
    server.throttle(1)
    with pytest.raises(RetryableError):
        provider.send(SendRequest((A,), "hi"))
    server.fail(1, 503)
    with pytest.raises(RetryableError):
        provider.send(SendRequest((B,), "hi"))
    wrong = make_provider(server, auth_token="wrong-token-value")
    with pytest.raises(PermanentError):
        wrong.send(SendRequest((C,), "hi"))

    text = caplog.text
    assert "plivo queued 2 message(s)" in text  # the provider did log
    assert "failed (RetryableError)" in text
    for secret in (server.auth_token, "wrong-token-value", A, B, C):
        assert secret not in text
    assert mask_phone(A) in text
    assert server.auth_token not in repr(provider)


def test_from_settings_reads_the_environment_at_call_time(server, monkeypatch):
    monkeypatch.setenv("PLIVO_AUTH_ID", server.auth_id)
    monkeypatch.setenv("PLIVO_AUTH_TOKEN", server.auth_token)
    monkeypatch.setenv("PLIVO_SRC", SRC)
    monkeypatch.delenv("PLIVO_POWERPACK_UUID", raising=False)
    monkeypatch.setenv("PLIVO_BASE_URL", server.base_url)
    prov = PlivoProvider.from_settings(timeout=TIMEOUT)
    assert prov.base_url == server.base_url
    prov.send(SendRequest((A,), "hi"))
    assert server.messages[0].src == SRC


def test_from_settings_defaults_to_plivo():
    env = {"PLIVO_AUTH_ID": "MA" + "X" * 18, "PLIVO_AUTH_TOKEN": "t", "PLIVO_SRC": SRC}
    assert PlivoProvider.from_settings(env).base_url == PLIVO_API_BASE_URL


@pytest.mark.parametrize(
    ("missing", "named"),
    [
        ("PLIVO_AUTH_ID", "PLIVO_AUTH_ID"),
        ("PLIVO_AUTH_TOKEN", "PLIVO_AUTH_TOKEN"),
        ("PLIVO_SRC", "PLIVO_SRC or PLIVO_POWERPACK_UUID"),
    ],
)
def test_from_settings_names_the_missing_variable(missing, named):
    env = {"PLIVO_AUTH_ID": "MA" + "X" * 18, "PLIVO_AUTH_TOKEN": "secret", "PLIVO_SRC": SRC}
    del env[missing]
    with pytest.raises(ProviderConfigError, match=named) as info:
        PlivoProvider.from_settings(env)
    assert "secret" not in str(info.value)


def test_from_settings_rejects_both_src_and_powerpack():
    env = {
        "PLIVO_AUTH_ID": "MA" + "X" * 18,
        "PLIVO_AUTH_TOKEN": "t",
        "PLIVO_SRC": SRC,
        "PLIVO_POWERPACK_UUID": "pp",
    }
    with pytest.raises(ProviderConfigError, match="only one"):
        PlivoProvider.from_settings(env)


def test_a_malformed_auth_id_is_a_config_error():
    with pytest.raises(ProviderConfigError, match="20 characters"):
        PlivoProvider("MA123", "t", src=SRC)


# -- the server's control endpoint, from another process --------------------------------------


def test_control_endpoint_drives_the_server(server, provider):
    def control(body: dict) -> dict:
        response = requests.post(f"{server.url}/__control", json=body, timeout=2)
        assert response.status_code == 200, response.text
        return response.json()

    assert control({"fail": {"count": 1, "status": 502}})["fail_left"] == 1
    with pytest.raises(RetryableError):
        provider.send(SendRequest((A,), "hi"))
    control({"throttle": {"count": 1, "retry_after": 0.2}})
    with pytest.raises(RetryableError) as info:
        provider.send(SendRequest((A,), "hi"))
    assert info.value.retry_after == pytest.approx(0.2)
    assert control({"refuse": {"seconds": 0.4}})["listening"] is False
    with pytest.raises(RetryableError, match="could not connect"):
        provider.send(SendRequest((A,), "hi"))
    time.sleep(0.6)
    provider.send(SendRequest((B,), "after the outage"))
    messages = requests.get(f"{server.url}/__messages", timeout=2).json()["messages"]
    assert [m["dst"] for m in messages] == [B]
    bad = requests.post(f"{server.url}/__control", json={"explode": True}, timeout=2)
    assert bad.status_code == 400


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_standalone_server_runs_as_a_module(tmp_path):
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipelines.testing.plivo_server", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        banner = proc.stdout.readline()
        assert f"127.0.0.1:{port}" in banner
        from pipelines.testing.plivo_server import DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN

        prov = PlivoProvider(
            DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN, src=SRC, base_url=f"http://127.0.0.1:{port}"
        )
        requests.post(
            f"http://127.0.0.1:{port}/__control", json={"latency_ms": 50}, timeout=2
        ).raise_for_status()
        started = time.monotonic()
        assert prov.send(SendRequest((A,), "hi")).message_uuids
        assert time.monotonic() - started >= 0.05
    finally:
        proc.terminate()
        proc.wait(5)


def test_latency_is_applied(server, provider):
    server.set_latency(150)
    started = time.monotonic()
    provider.send(SendRequest((A,), "hi"))
    assert time.monotonic() - started >= 0.15


# -- pure helpers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, PermanentError),
        (401, PermanentError),
        (403, PermanentError),
        (404, PermanentError),
        (405, PermanentError),
        (409, PermanentError),
        (422, PermanentError),
        (429, RetryableError),
        (500, RetryableError),
        (502, RetryableError),
        (503, RetryableError),
        (504, RetryableError),
        (501, AmbiguousError),
    ],
)
def test_classify_status(status, kind):
    error = classify_status(status, "why")
    assert type(error) is kind
    assert (error.status, error.message) == (status, "why")


def test_parse_retry_after():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(later, now=now.timestamp()) == pytest.approx(30.0)
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("inf") is None
    assert parse_retry_after(None) is None


@given(st.from_regex(r"\+1[2-9]\d{9}", fullmatch=True))
def test_mask_phone_keeps_only_the_last_four_digits(number):
    masked = mask_phone(number)
    assert len(masked) == len(number)
    assert masked.endswith(number[-4:])
    assert sum(ch.isdigit() for ch in masked) == 4
    assert number not in mask_phones_in(f"error for {number}: blocked")


def test_dry_run_is_deterministic_and_records():
    dry = DryRunProvider()
    request = SendRequest((A, B), "hi")
    first, second = dry.send(request), dry.send(request)
    assert first == second
    assert first.message_uuids == (dry_run_uuid("hi", A), dry_run_uuid("hi", B))
    assert first.message_uuids[0].startswith("dry-") and len(first.message_uuids[0]) == 44
    assert dry.sent == [request, request]


def test_providers_satisfy_the_protocol(server):
    assert isinstance(DryRunProvider(), Provider)
    assert isinstance(make_provider(server), Provider)
