"""A Plivo-compatible message API on 127.0.0.1, for tests, benchmarks and trying the sender locally.

It speaks the part of Plivo the sender uses, `POST {base}/v1/Account/{auth_id}/Message/` with
HTTP Basic auth and a JSON body, records every message it accepts, and can be told to misbehave
the ways the real service does: slow answers, 429 storms, 5xx, hanging after queueing, and
refusing connections. Drive it from Python (methods on `PlivoTestServer`) or, from another
process, with `POST /__control` (see `PlivoTestServer.control`).

    python -m pipelines.testing.plivo_server --port 8099 --latency-ms 20
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import hmac
import json
import logging
import re
import signal
import socket
import socketserver
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

# The SDK insists on 20 characters starting with MA (main account) or SA (subaccount).
DEFAULT_AUTH_ID = "MATESTSERVER00000000"
DEFAULT_AUTH_TOKEN = "test-server-token"
MAX_DESTINATIONS = 1000
LOG_VALUES = frozenset({"true", "false", "number_only", "content_only"})

# Only North American numbers are "deliverable" here; the leading + is optional, as on Plivo.
_VALID_NUMBER = re.compile(r"^\+?1\d{10}$")
_MESSAGE_PATH = re.compile(r"^/v1/Account/(?P<auth_id>[^/]+)/Message/?$")
CONTROL_PATH = "/__control"
MESSAGES_PATH = "/__messages"


@dataclass(frozen=True)
class RecordedMessage:
    """One accepted destination of one request: what Plivo would have queued."""

    auth_id: str
    src: str | None
    powerpack_uuid: str | None
    dst: str
    text: str
    url: str | None
    method: str | None
    log: str | None
    message_uuid: str
    api_id: str
    received_at: float  # time.time() when the request arrived


@dataclass(frozen=True)
class RequestRecord:
    """Every request to the message API, answered or not, for "did it reach us?" assertions."""

    method: str
    path: str
    status: int
    received_at: float
    hung: bool = False


@dataclass
class _Faults:
    latency_ms: float = 0.0
    throttle_left: int = 0
    retry_after: float = 1.0
    fail_left: int = 0
    fail_status: int = 503
    hang_left: int = 0
    hang_seconds: float | None = None  # None: until release_hung() or stop()


@dataclass
class _Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False
    hang_seconds: float | None = None


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # Bursts of concurrent senders should queue in the backlog, not be refused.
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], owner: PlivoTestServer) -> None:
        self.owner = owner
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn, a reverse DNS lookup that can stall for
        # seconds on machines without DNS; the name is never used here.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as requests' connection pool expects
    disable_nagle_algorithm = True
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        owner = self.server.owner
        path = urlsplit(self.path).path
        if path == CONTROL_PATH:
            self._send(200, owner.state())
        elif path == MESSAGES_PATH:
            self._send(200, {"messages": [asdict(m) for m in owner.messages]})
        elif _MESSAGE_PATH.match(path):
            self._send(405, {"error": "GET is not supported by this test server"})
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self) -> None:
        received_at = time.time()
        owner = self.server.owner
        path = urlsplit(self.path).path
        body = self._read_body()
        if path == CONTROL_PATH:
            self._control(body)
            return
        match = _MESSAGE_PATH.match(path)
        if match is None:
            self._send(404, {"error": "not found"})
            return
        try:
            reply = owner._handle_message(
                match["auth_id"], self.headers.get("Authorization"), body, received_at
            )
        except Exception:
            logger.exception("plivo test server failed on a request")
            reply = _Reply(500, {"error": "test server bug, see its log"})
        owner._log_request("POST", path, reply.status, received_at, reply.hang)
        if reply.hang:
            owner._wait_while_hung(reply.hang_seconds)
        self._send(reply.status, reply.body, reply.headers)

    def _control(self, raw: bytes) -> None:
        try:
            command = json.loads(raw or b"{}")
            if not isinstance(command, dict):
                raise ValueError("the control body must be a JSON object")
            refuse = command.get("refuse")
            if refuse is not None:
                # The listener goes away; this connection must not outlive the answer.
                self.close_connection = True
            state = self.server.owner.control(command, keep=self.connection)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            self._send(400, {"error": f"bad control command: {exc!r}"})
            return
        self._send(200, state)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(
        self, status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> None:
        payload = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            # The client gave up (its timeout after a hang) or we refused connections.
            self.close_connection = True


class PlivoTestServer:
    """A threaded Plivo look-alike on `host:port` (port 0 picks a free one; see `.port`)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        auth_id: str = DEFAULT_AUTH_ID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        credentials: Mapping[str, str] | None = None,
        invalid_numbers: Iterable[str] = (),
        latency_ms: float = 0.0,
    ) -> None:
        self.host = host
        self.port = port
        self.auth_id = auth_id
        self.auth_token = auth_token
        self._credentials = dict(credentials) if credentials else {auth_id: auth_token}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._faults = _Faults(latency_ms=float(latency_ms))
        self._invalid_numbers = set(invalid_numbers)
        self._messages: list[RecordedMessage] = []
        self._requests: list[RequestRecord] = []
        self._release = threading.Event()
        self._connections: set[socket.socket] = set()
        self._serve_lock = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._resume_timer: threading.Timer | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> PlivoTestServer:
        self.accept_connections()
        return self

    def stop(self) -> None:
        """Stop listening, drop every connection and let hung handlers go. Idempotent."""
        self._cancel_resume()
        self.release_hung()
        self._stop_listening()
        self._drop_connections(keep=None)

    def __enter__(self) -> PlivoTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What PLIVO_BASE_URL should be: the SDK appends `/{auth_id}/Message/`."""
        return f"{self.url}/v1/Account"

    @property
    def listening(self) -> bool:
        return self._httpd is not None

    # -- what happened ----------------------------------------------------------------------

    @property
    def messages(self) -> list[RecordedMessage]:
        with self._lock:
            return list(self._messages)

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._requests)

    def wait_for_messages(self, count: int, timeout: float = 5.0) -> list[RecordedMessage]:
        """Block until at least `count` messages are recorded (or raise TimeoutError)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self._messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self._messages)} of {count} messages recorded")
                self._changed.wait(left)
            return list(self._messages)

    # -- misbehaviour -----------------------------------------------------------------------

    def set_latency(self, ms: float) -> None:
        """Every message request waits this long before it is answered."""
        with self._lock:
            self._faults.latency_ms = max(0.0, float(ms))

    def throttle(self, count: int, retry_after: float = 1.0) -> None:
        """A 429 storm: the next `count` message requests get 429 with Retry-After."""
        with self._lock:
            self._faults.throttle_left = int(count)
            self._faults.retry_after = float(retry_after)

    def fail(self, count: int, status: int = 503) -> None:
        """The next `count` message requests get `status` (a 5xx, typically)."""
        with self._lock:
            self._faults.fail_left = int(count)
            self._faults.fail_status = int(status)

    def hang(self, count: int = 1, seconds: float | None = None) -> None:
        """The next `count` valid requests are accepted and recorded, then left unanswered.

        Recorded, because the real Plivo may well have queued a message whose answer was lost.
        After `seconds` (None: until `release_hung()` or `stop()`) the 202 is finally sent.
        """
        with self._lock:
            self._faults.hang_left = int(count)
            self._faults.hang_seconds = None if seconds is None else float(seconds)

    def release_hung(self) -> None:
        """Let every hung request answer now."""
        with self._lock:
            release, self._release = self._release, threading.Event()
        release.set()

    def refuse_connections(self, seconds: float | None = None) -> None:
        """Stop listening (connections are refused) and drop open ones; resume after `seconds`."""
        self._refuse(seconds, keep=None)

    def accept_connections(self) -> None:
        """Listen again, on the same port."""
        self._cancel_resume()
        with self._serve_lock:
            self._listen_locked()

    def set_invalid_numbers(self, numbers: Iterable[str]) -> None:
        """Numbers reported in `invalid_number` even though they look valid."""
        with self._lock:
            self._invalid_numbers = set(numbers)

    def reset(self) -> None:
        """Forget recordings and faults (latency included); keep listening as before."""
        self.release_hung()
        with self._lock:
            self._faults = _Faults()
            self._invalid_numbers = set()
            self._messages.clear()
            self._requests.clear()

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "listening": self._httpd is not None,
                "port": self.port,
                "base_url": self.base_url,
                "latency_ms": self._faults.latency_ms,
                "throttle_left": self._faults.throttle_left,
                "retry_after": self._faults.retry_after,
                "fail_left": self._faults.fail_left,
                "fail_status": self._faults.fail_status,
                "hang_left": self._faults.hang_left,
                "hang_seconds": self._faults.hang_seconds,
                "invalid_numbers": sorted(self._invalid_numbers),
                "messages": len(self._messages),
                "requests": len(self._requests),
            }

    def control(self, command: Mapping[str, Any], keep: socket.socket | None = None) -> dict:
        """Apply a control command (the body of `POST /__control`) and return `state()`.

        Keys, all optional and applied in this order:
          {"reset": true}
          {"latency_ms": 20}
          {"throttle": {"count": 5, "retry_after": 2}}     429 storm
          {"fail": {"count": 3, "status": 503}}            5xx for the next requests
          {"hang": {"count": 1, "seconds": null}}          accept, record, do not answer
          {"release_hung": true}
          {"invalid_numbers": ["+15550000000"]}
          {"refuse": {"seconds": 2}}   stop listening; over HTTP `seconds` is required, since
                                       nothing could reach the server to tell it to resume
        """
        known = {
            "reset",
            "latency_ms",
            "throttle",
            "fail",
            "hang",
            "release_hung",
            "invalid_numbers",
            "refuse",
        }
        unknown = set(command) - known
        if unknown:
            raise ValueError(f"unknown control keys: {sorted(unknown)}; known: {sorted(known)}")
        if command.get("reset"):
            self.reset()
        if "latency_ms" in command:
            self.set_latency(float(command["latency_ms"]))
        if "throttle" in command:
            spec = command["throttle"]
            self.throttle(int(spec["count"]), float(spec.get("retry_after", 1.0)))
        if "fail" in command:
            spec = command["fail"]
            self.fail(int(spec["count"]), int(spec.get("status", 503)))
        if "hang" in command:
            spec = command["hang"]
            seconds = spec.get("seconds")
            self.hang(int(spec.get("count", 1)), None if seconds is None else float(seconds))
        if command.get("release_hung"):
            self.release_hung()
        if "invalid_numbers" in command:
            self.set_invalid_numbers(str(n) for n in command["invalid_numbers"])
        state = self.state()
        if command.get("refuse") is not None:
            seconds = command["refuse"].get("seconds")
            if seconds is None or float(seconds) <= 0:
                raise ValueError("refuse over HTTP needs a positive 'seconds'")
            self._refuse(float(seconds), keep=keep)
            state["listening"] = False
        return state

    # -- internals --------------------------------------------------------------------------

    def _refuse(self, seconds: float | None, keep: socket.socket | None) -> None:
        self._cancel_resume()
        self._stop_listening()
        # Idle keep-alive connections would otherwise still reach us: drop them, so clients
        # notice before their next request and have to reconnect (and be refused).
        self._drop_connections(keep=keep)
        if seconds is not None:
            timer = threading.Timer(seconds, self._resume_after_refusal)
            timer.daemon = True
            with self._serve_lock:
                self._resume_timer = timer
            timer.start()

    def _resume_after_refusal(self) -> None:
        with self._serve_lock:
            # stop() or accept_connections() since the timer started: they have the last word.
            if self._resume_timer is not threading.current_thread():
                return
            self._resume_timer = None
            self._listen_locked()

    def _listen_locked(self) -> None:
        if self._httpd is None:
            httpd = _HTTPServer((self.host, self.port), self)
            self.port = httpd.server_address[1]
            thread = threading.Thread(
                # A short poll keeps refuse_connections() quick.
                target=httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"plivo-test-server:{self.port}",
                daemon=True,
            )
            thread.start()
            self._httpd, self._thread = httpd, thread

    def _stop_listening(self) -> None:
        with self._serve_lock:
            httpd, thread = self._httpd, self._thread
            self._httpd = self._thread = None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if thread is not None:
            thread.join()

    def _cancel_resume(self) -> None:
        with self._serve_lock:
            timer, self._resume_timer = self._resume_timer, None
        if timer is not None:
            timer.cancel()

    def _track(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.add(conn)

    def _untrack(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.discard(conn)

    def _drop_connections(self, keep: socket.socket | None) -> None:
        with self._lock:
            doomed = [c for c in self._connections if c is not keep]
        for conn in doomed:
            # shutdown, not close: the handler thread owns the socket and closes it itself.
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def _log_request(
        self, method: str, path: str, status: int, received_at: float, hung: bool
    ) -> None:
        with self._lock:
            self._requests.append(RequestRecord(method, path, status, received_at, hung))

    def _wait_while_hung(self, seconds: float | None) -> None:
        with self._lock:
            release = self._release
        release.wait(seconds)

    def _authorized(self, path_auth_id: str, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        auth_id, _, token = decoded.partition(":")
        expected = self._credentials.get(auth_id)
        return (
            expected is not None
            and hmac.compare_digest(token.encode(), expected.encode())
            and auth_id == path_auth_id
        )

    def _handle_message(
        self, path_auth_id: str, authorization: str | None, raw: bytes, received_at: float
    ) -> _Reply:
        api_id = str(uuid.uuid4())
        with self._lock:
            latency = self._faults.latency_ms
        if latency > 0:
            time.sleep(latency / 1000)
        if not self._authorized(path_auth_id, authorization):
            return _Reply(401, {"api_id": api_id, "error": "Authentication credentials invalid"})

        with self._lock:
            faults = self._faults
            if faults.throttle_left > 0:
                faults.throttle_left -= 1
                retry_after = faults.retry_after
                return _Reply(
                    429,
                    {"api_id": api_id, "error": "too many requests"},
                    {"Retry-After": _format_seconds(retry_after)},
                )
            if faults.fail_left > 0:
                faults.fail_left -= 1
                return _Reply(faults.fail_status, {"api_id": api_id, "error": "server error"})

        try:
            params = _validate(raw)
        except ValueError as exc:
            return _Reply(400, {"api_id": api_id, "error": str(exc)})

        with self._lock:
            invalid_set = set(self._invalid_numbers)
        valid, invalid = [], []
        for number in params["dst"].split("<"):
            ok = _VALID_NUMBER.match(number) and number not in invalid_set
            (valid if ok else invalid).append(number)
        if not valid:
            return _Reply(
                400,
                {
                    "api_id": api_id,
                    "error": "no valid destination number",
                    "invalid_number": invalid,
                },
            )

        recorded = [
            RecordedMessage(
                auth_id=path_auth_id,
                src=params.get("src"),
                powerpack_uuid=params.get("powerpack_uuid"),
                dst=number,
                text=params["text"],
                url=params.get("url"),
                method=params.get("method"),
                log=params.get("log"),
                message_uuid=str(uuid.uuid4()),
                api_id=api_id,
                received_at=received_at,
            )
            for number in valid
        ]
        body: dict[str, Any] = {
            "api_id": api_id,
            "message": "message(s) queued",
            "message_uuid": [m.message_uuid for m in recorded],
        }
        if invalid:
            body["invalid_number"] = invalid
        with self._changed:
            self._messages.extend(recorded)
            faults = self._faults
            hang = faults.hang_left > 0
            if hang:
                faults.hang_left -= 1
            hang_seconds = faults.hang_seconds
            self._changed.notify_all()
        return _Reply(202, body, hang=hang, hang_seconds=hang_seconds)


def _validate(raw: bytes) -> dict[str, Any]:
    """The checks Plivo makes that a client can get wrong; raises ValueError with its message."""
    try:
        params = json.loads(raw or b"")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("request body is not valid JSON") from exc
    if not isinstance(params, dict):
        raise ValueError("request body must be a JSON object")
    src, powerpack = params.get("src"), params.get("powerpack_uuid")
    if not src and not powerpack:
        raise ValueError("Missing 'src' or 'powerpack_uuid' parameter")
    if src and powerpack:
        raise ValueError("Specify only one of 'src' and 'powerpack_uuid'")
    dst = params.get("dst")
    if not dst:
        raise ValueError("Missing 'dst' parameter")
    if not isinstance(dst, str):
        raise ValueError("'dst' must be a string of numbers separated by '<'")
    if dst.count("<") >= MAX_DESTINATIONS:
        raise ValueError(f"too many destinations: at most {MAX_DESTINATIONS} per request")
    text = params.get("text")
    if not text:
        raise ValueError("Missing 'text' parameter")
    if not isinstance(text, str):
        raise ValueError("'text' must be a string")
    log = params.get("log")
    if log is not None and (not isinstance(log, str) or log not in LOG_VALUES):
        raise ValueError(f"'log' must be one of {sorted(LOG_VALUES)} as a string")
    url = params.get("url")
    if url is not None and not (isinstance(url, str) and url.startswith(("http://", "https://"))):
        raise ValueError("'url' must be an http(s) URL")
    return params


def _format_seconds(seconds: float) -> str:
    # Retry-After is an integer on the wire; keep fractions only for fast tests.
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--auth-id", default=DEFAULT_AUTH_ID)
    parser.add_argument("--auth-token", default=DEFAULT_AUTH_TOKEN)
    parser.add_argument(
        "--invalid-number", action="append", default=[], help="report this number as invalid"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    server = PlivoTestServer(
        args.host,
        args.port,
        auth_id=args.auth_id,
        auth_token=args.auth_token,
        invalid_numbers=args.invalid_number,
        latency_ms=args.latency_ms,
    ).start()
    # The credentials printed are the test server's own, made up for local use.
    print(f"Plivo test server on {server.url} (control: POST {server.url}{CONTROL_PATH})")
    print("Point the sender at it with:")
    print(f"  export PLIVO_BASE_URL={server.base_url}")
    print(f"  export PLIVO_AUTH_ID={server.auth_id}")
    print(f"  export PLIVO_AUTH_TOKEN={server.auth_token}")
    print("  export PLIVO_SRC=+15550001111")
    print("Ctrl-C to stop.", flush=True)
    stopped = threading.Event()
    # SIGTERM (from a test harness or `kill`) stops as cleanly as Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        stopped.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        print(f"Stopped after {len(server.messages)} accepted message(s).")


if __name__ == "__main__":
    main()
