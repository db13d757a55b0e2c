"""STARTTLS, implicit TLS and AUTH, against real aiosmtpd servers on loopback.

Each test makes its own throw-away CA and a server certificate for 127.0.0.1 and
localhost. ``SmtpSender`` verifies certificates against the system CAs
(``ssl.create_default_context()``); OpenSSL reads ``SSL_CERT_FILE`` for where they are,
so the tests that should succeed point it at the throw-away CA, and the ones that should
not leave it alone: verification is never turned off.

The servers record what the sender cannot hide: each AUTH attempt and whether the
connection was encrypted when it came, each message with its envelope, and which
connections are still open.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from scripted_smtp import peer, scripted

from channels import verp
from channels.email import DeliveryError, DeliveryUnknown, SmtpSender
from channels.message import OutgoingEmail
from sequencer.core.models import Mailbox
from sequencer.loopback.smtp_server import free_port

USER = "sdr@mail.example"
PASSWORD = "correct horse battery staple"
PASSWORD_ENV = "SDR_SMTP_PASSWORD"
VERP_SECRET = "tls-test-secret"


# --- a throw-away CA and server certificate -------------------------------------------


@dataclass
class Pki:
    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def make_pki(directory: Path, names: tuple[str, ...] = ("localhost", "127.0.0.1")) -> Pki:
    """A CA and a server certificate it signed for ``names`` (DNS names or IP addresses)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sequencer test CA (throw-away)")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    alt_names: list[x509.GeneralName] = []
    for name in names:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt_names.append(x509.DNSName(name))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    pki = Pki(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    pki.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pki.key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return pki


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


@pytest.fixture
def trust_ca(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> Pki:
    """Make the throw-away CA the one the client trusts, the standard OpenSSL way."""
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca_file))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    return pki


# --- a recording aiosmtpd server --------------------------------------------------------


def _encrypted(server: SMTP) -> bool:
    return server.transport is not None and server.transport.get_extra_info("cipher") is not None


@dataclass
class Attempt:
    mechanism: str
    login: str
    accepted: bool
    encrypted: bool


@dataclass
class Arrived:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    encrypted: bool


@dataclass
class Record:
    auth: list[Attempt] = field(default_factory=list)
    messages: list[Arrived] = field(default_factory=list)
    open: set[int] = field(default_factory=set)  # ids of the server sessions still connected

    def authenticator(self, server: SMTP, session, envelope, mechanism: str, auth_data) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        accepted = (auth_data.login, auth_data.password) == (USER.encode(), PASSWORD.encode())
        self.auth.append(Attempt(mechanism, auth_data.login.decode(), accepted, _encrypted(server)))
        return AuthResult(success=accepted, handled=False)  # aiosmtpd answers 535 when not accepted

    async def handle_DATA(self, server: SMTP, session, envelope: Envelope) -> str:
        self.messages.append(Arrived(envelope.mail_from, list(envelope.rcpt_tos),
                                     envelope.original_content or envelope.content, _encrypted(server)))
        return "250 Message accepted for delivery"

    def wait_all_closed(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while self.open and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not self.open, f"{len(self.open)} connection(s) left open by the client"


class _RecordingController(Controller):
    def __init__(self, record: Record, **kwargs) -> None:
        self.record = record
        super().__init__(record, **kwargs)

    def factory(self) -> SMTP:
        record = self.record

        class RecordingSMTP(SMTP):
            def connection_made(self, transport) -> None:
                record.open.add(id(self))  # called again after STARTTLS: a set
                super().connection_made(transport)

            def connection_lost(self, error) -> None:
                record.open.discard(id(self))
                super().connection_lost(error)

        return RecordingSMTP(self.handler, **self.SMTP_kwargs)


@dataclass
class Server:
    host: str
    port: int
    record: Record


@contextmanager
def serve(*, ssl_context: ssl.SSLContext | None = None, **smtp_parameters) -> Iterator[Server]:
    record = Record()
    port = free_port()
    controller = _RecordingController(record, hostname="127.0.0.1", port=port, ssl_context=ssl_context,
                                      authenticator=record.authenticator, **smtp_parameters)
    controller.start()
    try:
        record.wait_all_closed()  # the controller's own start-up probe
        yield Server("127.0.0.1", port, record)
    finally:
        controller.stop()


def starttls_server(pki: Pki) -> Iterator[Server]:
    """STARTTLS offered and required before MAIL; AUTH offered only once encrypted."""
    return serve(tls_context=pki.server_context(), require_starttls=True, auth_require_tls=True)


def implicit_tls_server(pki: Pki) -> Iterator[Server]:
    # TLS from the first byte. aiosmtpd only counts STARTTLS as TLS for auth_require_tls,
    # so it is off here; the authenticator records that the channel was encrypted anyway.
    return serve(ssl_context=pki.server_context(), auth_require_tls=False)


# --- the sender, built as production builds it ------------------------------------------


def _mailbox(server, security: str, *, host: str | None = None, password_env: str = PASSWORD_ENV) -> Mailbox:
    return Mailbox(id=1, address=USER, display_name="Sam", sending_domain="mail.example",
                   smtp_host=host or server.host, smtp_port=server.port, smtp_security=security,
                   smtp_username=USER, smtp_password_env=password_env)


def _email(mailbox: Mailbox, n: int = 1) -> OutgoingEmail:
    return OutgoingEmail(mailbox=mailbox, to=f"dana{n}@prospect.example", subject=f"Quick question {n}",
                         text="Hi Dana,\n\nshort and plain.", message_id=f"m{n}@mail.example",
                         envelope_from=_return_path(n))


def _return_path(n: int) -> str:
    return verp.return_path("bounces@mail.example", n, VERP_SECRET)


@contextmanager
def sender(password: str | None = PASSWORD) -> Iterator[SmtpSender]:
    smtp = SmtpSender(timeout=5, env={} if password is None else {PASSWORD_ENV: password})
    try:
        yield smtp
    finally:
        smtp.close()


def refused(send: Callable[[], object]) -> DeliveryError:
    with pytest.raises(DeliveryError) as caught:
        send()
    assert not isinstance(caught.value, DeliveryUnknown)  # refused before any of the message went
    assert caught.value.permanent is False  # the mailbox's problem, never the prospect's (no bounce)
    return caught.value


# --- the tests ---------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_starttls_then_auth_delivers_over_one_kept_connection(trust_ca, host):
    with starttls_server(trust_ca) as server, sender() as smtp:
        mailbox = _mailbox(server, "starttls", host=host)
        assert [smtp.send(_email(mailbox, n)) for n in (1, 2)] == ["m1@mail.example", "m2@mail.example"]

        record = server.record
        assert [(a.login, a.accepted, a.encrypted) for a in record.auth] == [(USER, True, True)]  # once
        assert [(m.mail_from, m.rcpt_tos, m.encrypted) for m in record.messages] == [
            (_return_path(1), ["dana1@prospect.example"], True),
            (_return_path(2), ["dana2@prospect.example"], True),
        ]
        parsed = message_from_bytes(record.messages[0].content)
        assert (parsed["Message-ID"], parsed["From"], parsed["To"]) == (
            "<m1@mail.example>", f"Sam <{USER}>", "dana1@prospect.example")
    record.wait_all_closed()


def test_a_wrong_password_is_refused_and_nothing_is_delivered(trust_ca):
    with starttls_server(trust_ca) as server, sender(password="wrong") as smtp:
        mailbox = _mailbox(server, "starttls")
        error = refused(lambda: smtp.send(_email(mailbox)))

        assert error.code == 535
        assert str(error).startswith("535 authentication failed:") and "credentials invalid" in str(error)
        assert server.record.auth and all(a.encrypted and not a.accepted for a in server.record.auth)
        assert server.record.messages == []
        server.record.wait_all_closed()  # the failed connection is closed, not kept or leaked
        again = smtp.send_many([_email(mailbox, 2)])[0]
        assert isinstance(again, DeliveryError) and again.code == 535  # no half-open connection reused
        assert server.record.messages == []


def test_a_missing_password_is_reported_without_trying_to_log_in(trust_ca):
    with starttls_server(trust_ca) as server, sender(password=None) as smtp:
        error = refused(lambda: smtp.send(_email(_mailbox(server, "starttls"))))

        assert error.code == 0 and f"environment variable {PASSWORD_ENV} is not set" in str(error)
        assert server.record.auth == [] and server.record.messages == []


def test_implicit_tls_with_auth_delivers(trust_ca):
    with implicit_tls_server(trust_ca) as server, sender() as smtp:
        mailbox = _mailbox(server, "ssl")
        assert smtp.send(_email(mailbox)) == "m1@mail.example"

        assert [(a.accepted, a.encrypted) for a in server.record.auth] == [(True, True)]
        assert [(m.mail_from, m.rcpt_tos, m.encrypted) for m in server.record.messages] == [
            (_return_path(1), ["dana1@prospect.example"], True)]
    server.record.wait_all_closed()


def test_a_server_without_starttls_is_refused_and_sees_no_credentials():
    """It offers AUTH in the clear; a mailbox that requires STARTTLS must not fall back to it."""
    with scripted(["AUTH PLAIN LOGIN", "PIPELINING"]) as script, sender() as smtp:
        error = refused(lambda: smtp.send(_email(_mailbox(peer(script), "starttls"))))

        assert error.code == 0 and "STARTTLS extension not supported" in str(error)
        # smtplib waits for each reply, so whatever it sent is recorded by the time it raised
        assert [command.split()[0].upper() for command in script["commands"]] == ["EHLO"]  # then it hung up
        assert not any(PASSWORD in command for command in script["commands"])
        assert script["bodies"] == []


@pytest.mark.parametrize("security", ["starttls", "ssl"])
@pytest.mark.parametrize("problem", ["untrusted CA", "another host's certificate"])
def test_a_certificate_that_does_not_verify_is_refused_before_auth(tmp_path, monkeypatch, security, problem):
    """Verification is on: a CA nobody trusts, or a trusted CA's certificate for another name."""
    pki = make_pki(tmp_path / "pki", names=("localhost", "127.0.0.1") if problem == "untrusted CA"
                   else ("mail.elsewhere.example",))
    if problem != "untrusted CA":
        monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca_file))
    server_for = starttls_server if security == "starttls" else implicit_tls_server
    with server_for(pki) as server, sender() as smtp:
        error = refused(lambda: smtp.send(_email(_mailbox(server, security))))

        assert error.code == 0 and "certificate verify failed" in str(error)
        expected = "unable to get local issuer certificate" if problem == "untrusted CA" else "IP address mismatch"
        assert expected in str(error)
        assert server.record.auth == [] and server.record.messages == []
        server.record.wait_all_closed()
