"""``POST /inbound`` on a real uvicorn: the size limit holds while reading, big form fields go in,
and one large message does not stall the server's other requests.

SendGrid's inbound parse ("POST the raw, full MIME message") sends multipart/form-data whose
``email`` field is the whole message, up to 30 MB; a form field is not a file, so it must
not meet Starlette's 1 MB per-field default. Oversized requests are sent over a raw socket
that never finishes the body: a server that waited for the whole of it would never answer.
"""

from __future__ import annotations

import hashlib
import socket
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select
from suppression_fixtures import live_server

from sequencer.app.api import create_app
from sequencer.app.api import inbound as inbound_api
from sequencer.app.api.inbound import MAX_BODY
from sequencer.core import api_keys
from sequencer.core.models import InboundMessage

MB = 1024 * 1024


@pytest.fixture
def server(engine: Engine, session, settings, clock) -> Iterator[tuple[str, str]]:
    """(base URL, API key) of a live server on the test's database."""
    key = api_keys.create(session, clock.now(), "limits-tests", ["inbound"]).key
    with live_server(create_app(settings, engine, clock)) as base:
        yield base, key


def reply(size: int, subject: bytes = b"Re: the proposal", html: bool = False) -> bytes:
    """A reply of about ``size`` bytes, without a Message-ID: it is stored under the hash of its bytes."""
    line = (b"<div><p>Thanks for the <b>note</b>, let us <i>talk</i> next week.</p></div>\r\n" if html
            else b"Thanks for the note, let us talk next week about the proposal and the pilot.\r\n")
    kind = b"text/html" if html else b"text/plain"
    head = (b"From: J\xf6rg <joerg@northwind.example>\r\nTo: sam@outreach-acme.example\r\nSubject: " + subject
            + b"\r\nDate: Mon, 30 Nov 2026 16:00:00 +0000\r\nContent-Type: " + kind + b"; charset=iso-8859-1\r\n\r\n")
    return head + line * max(1, (size - len(head)) // len(line))


def raw_request(base: str, key: str, headers: str) -> socket.socket:
    url = urlsplit(base)
    sock = socket.create_connection((url.hostname, url.port), timeout=10)
    sock.sendall((f"POST /inbound HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Bearer {key}\r\n"
                  f"{headers}\r\n").encode())
    return sock


def status_line(sock: socket.socket) -> str:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n", 1)[0].decode()


def stored(session) -> list[InboundMessage]:
    session.expire_all()
    return list(session.exec(select(InboundMessage)))


def test_a_content_length_over_the_limit_is_refused_before_the_body_is_read(session, server):
    base, key = server
    sock = raw_request(base, key, f"Content-Type: message/rfc822\r\nContent-Length: {MAX_BODY + 1}\r\n")
    try:
        sock.sendall(reply(4096))  # and nothing more: the rest never comes

        assert status_line(sock) == "HTTP/1.1 413 Request Entity Too Large"
    finally:
        sock.close()
    assert stored(session) == []


def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_limit(session, server):
    base, key = server
    sock = raw_request(base, key, "Content-Type: message/rfc822\r\nTransfer-Encoding: chunked\r\n")
    chunk = b"x" * MB
    answer: list[str] = []
    reader = threading.Thread(target=lambda: answer.append(status_line(sock)), daemon=True)
    reader.start()
    sent = 0
    try:
        while sent <= MAX_BODY + 4 * MB and reader.is_alive():  # never the last (empty) chunk
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
    except OSError:
        pass  # the server answered and closed while we were still sending
    reader.join(timeout=10)
    sock.close()

    assert answer == ["HTTP/1.1 413 Request Entity Too Large"]
    assert stored(session) == []


def sendgrid_form(raw: bytes) -> tuple[bytes, str]:
    """The multipart/form-data body SendGrid's raw inbound parse posts, and its Content-Type."""
    boundary = "xYzZY"
    fields = [("dkim", b"{@northwind.example : pass}"), ("email", raw), ("to", b"sam@outreach-acme.example"),
              ("from", b"Joerg <joerg@northwind.example>"), ("sender_ip", b"192.0.2.10"),
              ("envelope", b'{"to":["sam@outreach-acme.example"],"from":"joerg@northwind.example"}'),
              ("charsets", b'{"to":"UTF-8","from":"UTF-8"}'), ("SPF", b"pass")]
    body = b"".join(b"--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n"
                    % (boundary.encode(), name.encode(), value) for name, value in fields)
    return body + b"--%s--\r\n" % boundary.encode(), f"multipart/form-data; boundary={boundary}"


def test_a_2_mb_message_in_the_email_form_field_is_taken_byte_for_byte(session, server):
    base, key = server
    raw = reply(2 * MB, subject=b"Gr\xfc\xdfe aus K\xf6ln")
    body, content_type = sendgrid_form(raw)

    response = httpx.post(f"{base}/inbound", content=body, timeout=30,
                          headers={"Content-Type": content_type, "Authorization": f"Bearer {key}"})

    assert response.status_code == 200, response.text
    assert response.json()["kind"] == "reply"
    row = stored(session)[0]
    assert row.dedupe_key == "sha256:" + hashlib.sha256(raw).hexdigest()  # the field's bytes, as sent
    assert row.subject == "Grüße aus Köln"


def test_a_form_without_its_boundary_or_without_the_email_field_is_refused_naming_it(session, server):
    base, key = server
    auth = {"Authorization": f"Bearer {key}"}
    body, content_type = sendgrid_form(reply(1000))

    no_boundary = httpx.post(f"{base}/inbound", content=body, headers={**auth, "Content-Type": "multipart/form-data"})
    no_field = httpx.post(f"{base}/inbound", content=body.replace(b'name="email"', b'name="other"'),
                          headers={**auth, "Content-Type": content_type})

    assert no_boundary.status_code == 400 and "boundary" in no_boundary.text
    assert no_field.status_code == 400 and "'email'" in no_field.text
    assert stored(session) == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the event loop, not the database
def test_a_small_request_is_answered_while_a_large_message_is_classified(session, server, monkeypatch):
    """The large message's ingest is held mid-way (in the server's thread pool) until the small
    request has been answered: were ingest run on the event loop, the small one could not be.
    No clock is read: the order is forced, and the timeouts only stop a hung test."""
    base, key = server
    auth = {"Authorization": f"Bearer {key}", "Content-Type": "message/rfc822"}
    inside, release = threading.Event(), threading.Event()
    real_ingest = inbound_api.ingest_raw

    def held_ingest(session, now, settings, raw):
        if b"large" in raw[:2000]:
            inside.set()
            assert release.wait(timeout=30), "the small request was never answered"
        return real_ingest(session, now, settings, raw)

    monkeypatch.setattr(inbound_api, "ingest_raw", held_ingest)
    results: dict[str, int] = {}

    def post_large() -> None:
        response = httpx.post(f"{base}/inbound", content=reply(4 * MB, subject=b"large", html=True),
                              headers=auth, timeout=60)
        results["large"] = response.status_code

    thread = threading.Thread(target=post_large)
    thread.start()
    assert inside.wait(timeout=30), "the large message never reached ingest"
    small = httpx.post(f"{base}/inbound", content=reply(2000, subject=b"small"), headers=auth, timeout=20)
    answered_while_held = "large" not in results
    release.set()
    thread.join(timeout=60)

    assert small.status_code == 200, small.text
    assert answered_while_held, "the small request was answered only after the large one"
    assert results.get("large") == 200
    assert sorted(row.subject for row in stored(session)) == ["large", "small"]
