"""Helpers that drive the app (test client, HTTP, browser) and its models; importable from any test folder."""
from __future__ import annotations

import http.client
import io
import http.cookiejar
import json
import re
import socket
import socketserver
import ssl
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator
from urllib.parse import urlsplit


def login(client, email="owner@example.com", password="password123"):
    """Log a test client in through the real form."""
    response = client.post("/login", data={"email": email, "password": password})
    assert response.status_code == 302, response.data
    return response


def csrf_token(html: bytes) -> str:
    """The CSRF token of the first form in a page."""
    match = re.search(rb'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        rb'name="csrf_token" value="([^"]+)"', html)
    assert match, "no csrf token in page"
    return match.group(1).decode()


def visit_key(html: bytes) -> str:
    """The visit key the viewer page carries for tracking and chat."""
    match = re.search(rb'data-visit="([^"]+)"', html)
    assert match, "no visit key in page"
    return match.group(1).decode()


def read_sse(response) -> Iterator[tuple[str, dict]]:
    """(event, data) pairs from a Server-Sent Events body, read as they arrive (http.client response)."""
    event, data = "message", []
    while True:
        line = response.readline()
        if not line:
            return
        line = line.decode().rstrip("\r\n")
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif not line and data:
            yield event, json.loads("\n".join(data))
            event, data = "message", []


def sse_events(body: bytes) -> list[tuple[str, dict]]:
    """(event, data) pairs of a whole Server-Sent Events body (a test client's response.data)."""
    return list(read_sse(io.BytesIO(body)))


class Visitor:
    """A browser-like client over real sockets: keeps cookies (for all ports of a host) and the CSRF token."""

    def __init__(self):
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.csrf = ""

    def get(self, url: str) -> bytes:
        """GET a page; remembers the page's CSRF token when it has one."""
        with self.opener.open(url, timeout=60) as resp:
            html = resp.read()
        match = re.search(rb'<meta name="csrf-token" content="([^"]+)"', html) or re.search(
            rb'name="csrf_token" type="hidden" value="([^"]+)"', html)
        self.csrf = match.group(1).decode() if match else self.csrf
        return html

    def post(self, url: str, data: dict | None = None, body: dict | None = None) -> tuple[int, bytes]:
        """POST a form (`data`, with the CSRF token) or JSON (`body`); status and body of the final page."""
        if body is not None:
            payload, kind = json.dumps(body).encode(), "application/json"
        else:
            form = {"csrf_token": self.csrf, **(data or {})}
            payload, kind = urllib.parse.urlencode(form).encode(), "application/x-www-form-urlencoded"
        headers = {"Content-Type": kind, "X-CSRFToken": self.csrf}
        request = urllib.request.Request(url, data=payload, headers=headers)
        try:
            with self.opener.open(request, timeout=60) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def stream(self, url: str, body: dict, timeout: float = 120):
        """POST JSON with cookies and CSRF token; the open response, to read a stream as it comes."""
        parts = urlsplit(url)
        request = urllib.request.Request(url)
        self.jar.add_cookie_header(request)
        headers = {"Content-Type": "application/json", "X-CSRFToken": self.csrf,
                   "Cookie": request.get_header("Cookie", "")}
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        conn.request("POST", parts.path, body=json.dumps(body), headers=headers)
        return conn.getresponse()


class _Served:
    """A socket server on its own thread: `with` starts it, leaving shuts it down."""

    def _serve(self, server) -> None:
        self.server = server
        self.thread = threading.Thread(target=server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


class Receiver(_Served):
    """A webhook receiver that answers with the given statuses in turn (then 200) and keeps what it got."""

    def __init__(self, statuses=()):
        self.statuses = list(statuses)
        self.bodies: list[dict] = []
        self.raw: list[bytes] = []  # the bodies exactly as received, for signature checks
        self.headers: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                data = self.rfile.read(length)
                receiver.raw.append(data)
                receiver.bodies.append(json.loads(data))
                receiver.headers.append(dict(self.headers))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self._serve(ThreadingHTTPServer(("127.0.0.1", 0), Handler))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


def tls_receiver(folder: Path, name: str = "hooks.test") -> tuple[Receiver, Path, list[str]]:
    """A Receiver speaking HTTPS with a new self-signed certificate for `name` (made with openssl in `folder`):
    the receiver (not started), the certificate to trust, and the SNI names clients will have asked for."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName=DNS:{name}"], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    names: list[str] = []
    context.sni_callback = lambda sock, server_name, ctx: names.append(server_name)
    receiver = Receiver()
    receiver.server.socket = context.wrap_socket(receiver.server.socket, server_side=True)
    return receiver, cert, names


class ForwardProxy(_Served):
    """A real HTTP forward proxy on 127.0.0.1: CONNECT tunnels and absolute-form requests, one per connection.

    `requests` keeps each request line and its Proxy-Authorization header, for tests to see what was asked.
    """

    def __init__(self):
        self.requests: list[tuple[str, str | None]] = []
        proxy = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                line = self.rfile.readline().decode("latin-1").strip()
                headers = {}  # as sent, names' case kept
                while (header := self.rfile.readline().decode("latin-1").strip()):
                    name, _, value = header.partition(":")
                    headers[name.strip()] = value.strip()
                lower = {k.lower(): v for k, v in headers.items()}
                proxy.requests.append((line, lower.get("proxy-authorization")))
                method, target, _ = line.split(" ", 2)
                if method == "CONNECT":
                    host, _, port = target.rpartition(":")
                    upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=5)
                    self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    self._pipe(upstream)
                    return
                url = urllib.parse.urlsplit(target)
                body = self.rfile.read(int(lower.get("content-length", 0)))
                upstream = socket.create_connection((url.hostname, url.port or 80), timeout=5)
                kept = "".join(f"{k}: {v}\r\n" for k, v in headers.items() if not k.lower().startswith("proxy-"))
                path = (url.path or "/") + (f"?{url.query}" if url.query else "")
                upstream.sendall(f"{method} {path} HTTP/1.1\r\n{kept}connection: close\r\n\r\n".encode() + body)
                self._pipe(upstream)

            def _pipe(self, upstream):
                """Relay bytes both ways until either side closes."""
                def back():
                    try:
                        while (chunk := upstream.recv(65536)):
                            self.connection.sendall(chunk)
                        self.connection.shutdown(socket.SHUT_WR)
                    except OSError:  # the client has gone already
                        pass

                relay = threading.Thread(target=back, daemon=True)
                relay.start()
                try:
                    while (chunk := self.connection.recv(65536)):
                        upstream.sendall(chunk)
                except OSError:
                    pass
                relay.join(5)
                upstream.close()

        self._serve(socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


def commit_elsewhere() -> None:
    """Commit a write on another database connection, as an investor's heartbeat does in the middle of a
    request: a transaction that read before it must still be able to write after it (SQLite snapshots)."""
    from sqlalchemy import text

    from deckchat.extensions import db

    with db.engine.connect() as conn:
        conn.execute(text("UPDATE users SET email = email"))
        conn.commit()


ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def screenshot(page, name: str) -> None:
    """Save a screenshot under test-artifacts/ for people to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


@contextmanager
def watched_page(browser, **options):
    """A page in its own browser context; the test fails on console errors and on requests leaving localhost."""
    context = browser.new_context(**options)
    page = context.new_page()
    errors: list[str] = []
    outside: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda req: outside.append(req.url)
            if urlsplit(req.url).hostname not in ("127.0.0.1", "localhost", None) else None)
    try:
        yield page
    finally:
        context.close()
    assert errors == [], errors
    assert outside == [], outside


def browser_login(page, server, email="owner@example.com", password="password123") -> None:
    """Sign in through the login page of a live server and wait for the deck list."""
    page.goto(f"{server.url}/login")
    page.get_by_test_id("login-email").fill(email)
    page.get_by_test_id("login-password").fill(password)
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(f"{server.url}/decks/")


# Generation on tiny models (tests/ml): prompts of different lengths and the reference to compare with.
PROMPTS = [
    "Question: What does the company do? Answer:",
    "The investors asked about churn and margins",
    "Hello",
    "Speaker notes: mention the pilot customers, the waiting list and the bank. Question: who?",
]


def plain_generate(lm, prompt, n):
    """Reference: transformers' own greedy generate for one prompt, completion ids up to end-of-sequence."""
    x = lm.tokenizer(prompt, return_tensors="pt")
    out = lm.model.generate(**x, do_sample=False, max_new_tokens=n, pad_token_id=lm.tokenizer.pad_token_id)
    ids = out[0, (1 if lm.kind == "seq2seq" else x["input_ids"].shape[1]) :].tolist()
    eos = lm.tokenizer.eos_token_id
    return ids[: ids.index(eos)] if eos in ids else ids
