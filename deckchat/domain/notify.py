"""End-of-visit webhooks: find visits that ended, post a summary to their link's URL, retry with back-off.

A visit *ends* when no report has arrived for `idle` (the viewer reports every few seconds while open).
Each sweep claims a due visit with one conditional UPDATE before posting, so two sweepers (a cron job and
the serving process, or several workers) never deliver the same visit twice at once; a failed delivery is
retried after 1, 2, 4, ... minutes, up to MAX_ATTEMPTS, with the last error kept for the owner to see.

Each POST is signed Stripe-style with the link's secret (`signature_headers`, SECURITY.md) and goes only to
public addresses: the host is resolved, every address checked, and the connection opened to a checked
address itself, so a DNS answer that changes between the check and the connect (rebinding) cannot redirect it
to a private one. `WEBHOOK_ALLOW_PRIVATE` lifts the address rule (on-premises receivers, the tests).

Behind a forward proxy (HTTPS_PROXY / HTTP_PROXY in the environment, NO_PROXY honoured) the same holds: the
host is resolved and checked here, and the proxy is asked for the checked address, not the name (CONNECT
address:port for HTTPS, with SNI and the certificate still checked against the name; an absolute address-form
URL with the name in Host for HTTP). A name that does not resolve here is not delivered, proxy or not.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import socket
import ssl
import time
import urllib.request
from base64 import b64encode
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import unquote, urlsplit

from flask import current_app
from sqlalchemy import or_, select, update

from ..database import write_transaction
from ..extensions import db
from ..models import Deck, ShareLink, Visit, utcnow
from .visit_history import visit_timeline

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
CLAIM = timedelta(minutes=5)  # a crashed sweeper's claim lapses after this
LOOKBACK = timedelta(days=7)  # older ended visits are never announced late (e.g. after a long outage)
TIMEOUT_SECONDS = 10
USER_AGENT = "DeckChat-Webhook/1"


def valid_webhook_url(url: str) -> bool:
    """Whether a URL may receive webhooks: http(s) with a host, at most 500 characters."""
    parts = urlsplit(url or "")
    return parts.scheme in ("http", "https") and bool(parts.hostname) and len(url) <= 500


def backoff(attempts: int) -> timedelta:
    """Wait before the next try after `attempts` failed ones: 1, 2, 4, ... minutes."""
    return timedelta(minutes=2 ** max(0, attempts - 1))


@dataclass(frozen=True)
class Delivery:
    """The outcome of one delivery attempt."""

    visit_id: int
    url: str
    ok: bool
    status: int | None
    error: str | None
    attempts: int


def visit_summary(visit: Visit, deck: Deck, link: ShareLink) -> dict:
    """The JSON body of the webhook: who, which link, how long, how far, what they asked."""
    timeline = visit_timeline(visit)
    furthest = max((s["slide"] for s in timeline["stays"]), default=0)
    slides: dict[int, float] = {}
    for stay in timeline["stays"]:
        slides[stay["slide"]] = round(slides.get(stay["slide"], 0.0) + stay["visible_seconds"], 3)
    questions = [q for s in timeline["stays"] for q in s["questions"]] + timeline["other_questions"]
    return {
        "event": "visit.ended",
        "deck": {"id": deck.id, "title": deck.title, "slides": deck.slide_count},
        "link": {"id": link.id, "label": link.label},
        "visit": {
            "id": visit.id,
            "email": visit.email,
            "visitor_id": visit.visitor_id,
            "started_at": timeline["started_at"],
            "last_seen_at": timeline["last_seen_at"],
            "duration_seconds": timeline["duration_seconds"],
            "visible_seconds": timeline["visible_seconds"],
            "furthest_slide": min(furthest, deck.slide_count),
            "completed": bool(deck.slide_count) and furthest >= deck.slide_count,
            "slides": [{"slide": n, "visible_seconds": s} for n, s in sorted(slides.items())],
            "questions": [
                {"slide": q["slide"], "question": q["question"], "answered": q["answerable"]}
                for q in sorted(questions, key=lambda q: (q["asked_at"] or "", q["id"]))
            ],
        },
    }


class PrivateTargetError(ValueError):
    """A webhook host that is, or resolves to, a private or local address, while those are not allowed."""


def _public(address: str) -> bool:
    """Whether an IP address is on the public internet (not loopback, private, link-local, reserved, ...)."""
    ip = ipaddress.ip_address(address)
    if ip.version == 6:
        # ::ffff:10.0.0.1 and 6to4 2002:0a00:0001:: carry an IPv4 address that the checks below must see.
        ip = ip.ipv4_mapped or ip.sixtofour or ip
    # is_global alone lets multicast and some reserved ranges through on Python 3.11.
    return ip.is_global and not (ip.is_multicast or ip.is_reserved)


def _resolve(host: str, port: int | None = None) -> list[str]:
    """The host's addresses in the resolver's order (an IP literal gives itself); OSError if it is unknown."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(sockaddr[0] for *_, sockaddr in found))


def _refusal(host: str, addresses: list[str]) -> str | None:
    """The error for a host with non-public addresses among `addresses`, or None when all are public."""
    private = [a for a in addresses if not _public(a)]
    if not private:
        return None
    where = host if private == [host] else f"{host} resolves to {', '.join(private)}"
    return (f"Webhook URL points to a private or local address ({where}); "
            "set DECKCHAT_WEBHOOK_ALLOW_PRIVATE=1 to allow it")


def private_target_error(url: str) -> str | None:
    """Why a webhook URL must not be saved (its host is, or resolves to, a private or local address), or None.

    A host that does not resolve now passes (DNS may be down, or the name not published yet): every delivery
    resolves and checks again before it connects.
    """
    host = urlsplit(url or "").hostname
    if not host:
        return None
    try:
        addresses = _resolve(host)
    except (OSError, ValueError):  # unknown name, resolver down; UnicodeError for a name IDNA refuses
        return None
    return _refusal(host, addresses)


def signature_headers(secret: str, data: bytes, timestamp: int | None = None) -> dict[str, str]:
    """X-DeckChat-Timestamp and X-DeckChat-Signature for a body: HMAC-SHA256 of "TIMESTAMP." + body bytes.

    The key is the secret's text as the owner sees it (64 hex characters), not its decoded bytes; the
    timestamp is signed too, so a receiver that rejects old ones cannot be fed a captured delivery later.
    """
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + data, hashlib.sha256).hexdigest()
    return {"X-DeckChat-Timestamp": str(timestamp), "X-DeckChat-Signature": f"sha256={digest}"}


def _pinned(connection_class: type[http.client.HTTPConnection]) -> type[http.client.HTTPConnection]:
    """A connection class that opens its socket to addresses checked beforehand instead of resolving again.

    Only the socket's destination changes: the Host header, and for HTTPS the SNI name and the certificate
    check, still use the URL's host name (HTTPSConnection wraps the socket with server_hostname=self.host).
    """

    class Pinned(connection_class):
        """The connection class, its socket opened to the checked addresses."""

        def __init__(self, host: str, *, addresses: list[str], **kwargs):
            """Connect to `host` by way of `addresses` (tried in turn, like socket.create_connection does)."""
            super().__init__(host, **kwargs)
            self._addresses = addresses
            # connect() opens its socket through this attribute; the port stays the URL's.
            self._create_connection = self._connect_checked

        def _connect_checked(self, address, timeout, source_address):
            """Open a socket to the first checked address that answers, on the URL's port."""
            error: OSError | None = None
            for ip in self._addresses:
                try:
                    return socket.create_connection((ip, address[1]), timeout, source_address)
                except OSError as exc:
                    error = exc
            raise error or OSError(f"no address for {self.host}")

    Pinned.__name__ = Pinned.__qualname__ = f"Pinned{connection_class.__name__}"
    return Pinned


_PinnedHTTP = _pinned(http.client.HTTPConnection)
_PinnedHTTPS = _pinned(http.client.HTTPSConnection)


@dataclass(frozen=True)
class Proxy:
    """A forward proxy for webhook deliveries: where it listens and the credentials it wants, if any."""

    host: str
    port: int
    headers: dict[str, str]  # Proxy-Authorization when the proxy URL carries user:password


def proxy_for(scheme: str, host: str) -> Proxy | None:
    """The proxy the environment sets for a delivery URL's scheme and host (NO_PROXY honoured), or None."""
    url = urllib.request.getproxies_environment().get(scheme)
    if not url or urllib.request.proxy_bypass_environment(host):
        return None
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"webhook proxy must be an http:// URL with a host, not {url[:100]!r}")
    headers = {}
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        headers["Proxy-Authorization"] = "Basic " + b64encode(pair).decode()
    return Proxy(parts.hostname, parts.port or 80, headers)


def _netloc(host: str, port: int, default: int) -> str:
    """host[:port] for a URL or a Host header (IPv6 addresses bracketed; the scheme's own port left out)."""
    name = f"[{host}]" if ":" in host else host
    return name if port == default else f"{name}:{port}"


class _TunnelHTTPS(http.client.HTTPSConnection):
    """HTTPS through a proxy's CONNECT tunnel to a checked address; SNI and the certificate use the URL's name."""

    def __init__(self, proxy: Proxy, *, name: str, address: str, port: int, timeout: float,
                 context: ssl.SSLContext):
        """Tunnel to `address`:`port` by way of `proxy`, speaking TLS to `name` inside."""
        super().__init__(proxy.host, proxy.port, timeout=timeout, context=context)
        self._name, self._tls = name, context
        self.set_tunnel(f"[{address}]" if ":" in address else address, port, headers=proxy.headers)

    def connect(self):
        """Open the tunnel (the plain connect sends CONNECT), then TLS with the name, not the address."""
        http.client.HTTPConnection.connect(self)
        self.sock = self._tls.wrap_socket(self.sock, server_hostname=self._name)


def _connection(parts, port: int, addresses: list[str], timeout: float) -> tuple[http.client.HTTPConnection, str,
                                                                                 dict[str, str]]:
    """The connection for a delivery, the request target to send and the headers it needs (proxy or not)."""
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host, https = parts.hostname, parts.scheme == "https"
    proxy = proxy_for(parts.scheme, host)
    if proxy is None and https:
        return (_PinnedHTTPS(host, port=port, timeout=timeout, addresses=addresses,
                             context=ssl.create_default_context()), target, {})
    if proxy is None:
        return _PinnedHTTP(host, port=port, timeout=timeout, addresses=addresses), target, {}
    default = 443 if https else 80
    headers = {"Host": _netloc(host, port, default)}
    address = next((a for a in addresses if ":" not in a), addresses[0])  # IPv4 first: any proxy takes it
    if https:
        return (_TunnelHTTPS(proxy, name=host, address=address, port=port, timeout=timeout,
                             context=ssl.create_default_context()), target, headers)
    absolute = f"http://{_netloc(address, port, default)}{target}"
    return http.client.HTTPConnection(proxy.host, proxy.port, timeout=timeout), absolute, {**headers, **proxy.headers}


def post_json(url: str, body: dict, *, secret: str | None = None, allow_private: bool = False,
              timeout: float = TIMEOUT_SECONDS) -> int:
    """POST a JSON body (signed with `secret` if given) to the URL's checked address; return the HTTP status.

    Raises PrivateTargetError (a ValueError) without connecting when the host resolves to a private or local
    address and `allow_private` is off, OSError on network failure, ValueError for a malformed URL or proxy.
    Redirects are reported as the receiver's answer, never followed: nothing but the saved URL is ever called.
    Goes through the environment's proxy, if any (`proxy_for`), still to the checked address.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url[:100]!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = _resolve(parts.hostname, port)
    refusal = None if allow_private else _refusal(parts.hostname, addresses)
    if refusal:
        raise PrivateTargetError(refusal)
    data = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    if secret:
        headers.update(signature_headers(secret, data))
    conn, target, extra = _connection(parts, port, addresses, timeout)
    try:
        conn.request("POST", target, data, {**headers, **extra})
        response = conn.getresponse()
        response.read(64 * 1024)  # a little of the answer, so the receiver sees a clean close
        return response.status
    finally:
        conn.close()


def due_visits(now: datetime, idle: timedelta, limit: int = 100) -> list[int]:
    """Ids of ended, unannounced visits on links with a webhook whose next try is due."""
    ids = list(
        db.session.scalars(
            select(Visit.id)
            .join(ShareLink, ShareLink.id == Visit.link_id)
            .where(
                ShareLink.webhook_url.is_not(None),
                ShareLink.webhook_url != "",
                Visit.notified_at.is_(None),
                Visit.notify_attempts < MAX_ATTEMPTS,
                Visit.last_seen_at <= now - idle,
                Visit.last_seen_at >= now - LOOKBACK,
                or_(Visit.notify_next_at.is_(None), Visit.notify_next_at <= now),
            )
            .order_by(Visit.last_seen_at)
            .limit(limit)
        )
    )
    db.session.rollback()  # end the read snapshot before any write
    return ids


def _claim(visit_id: int, now: datetime, idle: timedelta) -> bool:
    """Take a due visit for this sweeper (one conditional UPDATE: only one claimant wins)."""
    with write_transaction() as conn:
        return (
            conn.execute(
                update(Visit)
                .where(
                    Visit.id == visit_id,
                    Visit.notified_at.is_(None),
                    Visit.last_seen_at <= now - idle,
                    or_(Visit.notify_next_at.is_(None), Visit.notify_next_at <= now),
                )
                .values(notify_next_at=now + CLAIM)
            ).rowcount
            == 1
        )


def deliver(visit_id: int, now: datetime | None = None, poster=post_json) -> Delivery:
    """Post one visit's summary and record the outcome (delivered, or the error and the next try)."""
    now = now or utcnow()
    visit = db.session.get(Visit, visit_id)
    link, deck = visit.link, db.session.get(Deck, visit.deck_id)
    url, body, attempts = link.webhook_url, visit_summary(visit, deck, link), (visit.notify_attempts or 0) + 1
    secret = link.webhook_secret
    db.session.rollback()  # no transaction stays open while the receiver takes its time
    # Checked at every delivery, not only when saved: the name may resolve elsewhere now.
    allow_private = bool(current_app.config.get("WEBHOOK_ALLOW_PRIVATE", False))
    status, error = None, None
    try:
        status = poster(url, body, secret=secret, allow_private=allow_private)
        if not 200 <= status < 300:
            error = f"HTTP {status}"
    except (OSError, ValueError, http.client.HTTPException) as exc:
        # refused, timed out, DNS, malformed URL or answer, a private address (retried: DNS may change back)
        error = f"{type(exc).__name__}: {exc}"[:300]
    if error is None:
        values = {"notified_at": utcnow(), "notify_next_at": None, "notify_error": None}
    else:
        log.warning("webhook for visit %s failed (attempt %s): %s", visit_id, attempts, error)
        values = {"notify_error": error, "notify_next_at": now + backoff(attempts)}
    with write_transaction() as conn:
        conn.execute(update(Visit).where(Visit.id == visit_id).values(notify_attempts=attempts, **values))
    return Delivery(visit_id, url, error is None, status, error, attempts)


def sweep(idle: timedelta, now: datetime | None = None, poster=post_json, limit: int = 100) -> list[Delivery]:
    """Deliver every due end-of-visit webhook once; return what happened to each."""
    now = now or utcnow()
    done = []
    for visit_id in due_visits(now, idle, limit):
        if _claim(visit_id, now, idle):
            done.append(deliver(visit_id, now, poster))
    return done
