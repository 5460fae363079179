"""TLS: the server's SSLContext from Config, and the ASGI ``tls`` scope extension.

The asyncio transport wraps its listeners with ``create_ssl_context(config)``; the Twisted
transport's ``ssl:`` endpoints bring their own pyOpenSSL context. Either way each TLS connection
gets one ``extensions["tls"]`` dict (ASGI TLS extension, spec 0.2): ``server_cert``,
``client_cert_chain``, ``client_cert_name``, ``client_cert_error``, ``tls_version`` and
``cipher_suite``. It is computed once per connection, after the handshake.

One key is Crossway's, not the spec's: ``tls_unique``, what Python's
``get_channel_binding("tls-unique")`` gives (bytes), which WAMP-cryptosign binds signatures to.
On TLS 1.2 that is RFC 5929's tls-unique, the handshake's first Finished message. TLS 1.3 does
not define tls-unique (RFC 8446 §C.5; RFC 9266 defines tls-exporter instead), yet Python (on
OpenSSL 3.0) still returns the first Finished, and the peer's Python gets the same bytes: autobahn
and Crossbar.io bind to it, so we report it too. It is None on the Twisted transport, whose
pyOpenSSL does not say whether a handshake resumed a session (and so which Finished is first).
"""

from __future__ import annotations

import importlib.util
import re
import ssl
from typing import Any

from asgi_server.config import Config

# uvicorn's --ssl-cert-reqs takes ssl.CERT_* numbers; we take those and their names.
_CERT_REQS = {
    "none": ssl.CERT_NONE,
    "0": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "1": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
    "2": ssl.CERT_REQUIRED,
}
# The ASGI extension reports the version as its wire value (RFC 8446 §4.2.1, RFC 5246 §6.2.1).
_TLS_VERSIONS = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}
# RFC 4514 §3 short names for the attribute types Python's getpeercert() spells out.
_RDN_NAMES = {
    "commonName": "CN",
    "countryName": "C",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "streetAddress": "STREET",
    "domainComponent": "DC",
    "userId": "UID",
}
_PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n?", re.DOTALL)


class TLSConfigError(ValueError):
    """The TLS options cannot be turned into a working server context."""


class ServerSSLContext(ssl.SSLContext):
    """An SSLContext that remembers what the ``tls`` scope extension needs from it."""

    server_cert: str | None = None
    cipher_ids: dict[str, int] = {}  # replaced per instance


def parse_cert_reqs(value: str) -> ssl.VerifyMode:
    """'none'/'optional'/'required' or uvicorn's 0/1/2 as an ``ssl.VerifyMode``."""
    try:
        return _CERT_REQS[value.strip().lower()]
    except KeyError:
        raise TLSConfigError(
            f"--ssl-cert-reqs {value!r} is not valid; use none, optional or required (or 0, 1, 2)."
        ) from None


def create_ssl_context(config: Config) -> ServerSSLContext | None:
    """The server context for ``config``, or None when no ``--ssl-certfile`` is given."""
    tickets = session_tickets(config)
    if config.ssl_certfile is None:
        if config.ssl_keyfile is not None or config.ssl_ca_certs is not None:
            raise TLSConfigError("--ssl-keyfile and --ssl-ca-certs need --ssl-certfile too.")
        return None
    context = ServerSSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(
            config.ssl_certfile, config.ssl_keyfile, config.ssl_keyfile_password
        )
        with open(config.ssl_certfile, encoding="ascii", errors="replace") as file:
            match = _PEM_CERT.search(file.read())
        context.server_cert = match.group(0) if match else None
        context.verify_mode = parse_cert_reqs(config.ssl_cert_reqs)
        if config.ssl_ca_certs is not None:
            context.load_verify_locations(config.ssl_ca_certs)
        elif context.verify_mode != ssl.CERT_NONE:
            raise TLSConfigError("--ssl-cert-reqs optional/required needs --ssl-ca-certs.")
        if config.ssl_ciphers is not None:
            context.set_ciphers(config.ssl_ciphers)
    except (OSError, ssl.SSLError) as exc:
        raise TLSConfigError(
            f"Cannot load the TLS certificate, key or CA files ({exc}); check --ssl-certfile, "
            "--ssl-keyfile, --ssl-keyfile-password and --ssl-ca-certs."
        ) from exc
    # ALPN (RFC 7301, RFC 9113 §3.2): h2 first when HTTP/2 is on, else HTTP/1.1 only.
    context.set_alpn_protocols(alpn_protocols(config))
    context.num_tickets = tickets
    # OpenSSL reports the cipher in use by name; the extension wants its IANA number, which
    # is the low 16 bits of OpenSSL's cipher id.
    context.cipher_ids = {cipher["name"]: cipher["id"] & 0xFFFF for cipher in context.get_ciphers()}
    return context


def session_tickets(config: Config) -> int:
    """How many TLS 1.3 NewSessionTicket messages to send after a full handshake.

    They let a client resume (no certificate, no signature next time), and they are sent just
    after the handshake, when the client writes its first request. A client that reads its TLS
    socket on one thread while writing on another (websockets' sync client) then runs OpenSSL's
    SSL_read and SSL_write on one ``SSL`` object at once, which OpenSSL does not support, and
    now and then loses that request (docs/guide/workers.md). 0 spares such clients, at the cost
    of resumption for all; the Twisted transport's pyOpenSSL cannot set it.
    """
    tickets = config.ssl_session_tickets
    default = Config.ssl_session_tickets  # a dataclass field's class attribute is its default
    if tickets < 0:
        raise TLSConfigError(f"--ssl-session-tickets {tickets} is not valid; use 0 or more.")
    if tickets != default and (config.transport == "twisted" or config.endpoints):
        raise TLSConfigError(
            "--ssl-session-tickets needs the asyncio transport (pyOpenSSL, under Twisted, "
            "cannot set it); drop it or serve without --transport twisted and --endpoint."
        )
    return tickets


def alpn_protocols(config: Config) -> list[str]:
    """The protocols we offer in ALPN, in our order of preference."""
    if config.http2 and importlib.util.find_spec("h2") is not None:
        return ["h2", "http/1.1"]
    return ["http/1.1"]


def rfc4514_name(subject: Any) -> str | None:
    """An RFC 4514 string for a ``getpeercert()`` subject (most specific RDN first)."""
    if not subject:
        return None
    rdns = []
    for rdn in reversed(subject):
        parts = [f"{_RDN_NAMES.get(key, key)}={_escape_rdn(value)}" for key, value in rdn]
        rdns.append("+".join(parts))
    return ",".join(rdns)


def _escape_rdn(value: str) -> str:
    # RFC 4514 §2.4: escape the special characters, a leading space or '#', a trailing space.
    escaped = re.sub(r'([,+"\\<>;=])', r"\\\1", value)
    if escaped.startswith((" ", "#")):
        escaped = "\\" + escaped
    if escaped.endswith(" ") and len(escaped) > 1:
        escaped = escaped[:-1] + "\\ "
    return escaped


def tls_extension(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> dict[str, Any]:
    """The ASGI ``tls`` extension for a connection whose handshake (stdlib ssl) is done."""
    context = ssl_object.context
    server_cert = getattr(context, "server_cert", None)
    cipher_ids: dict[str, int] = getattr(context, "cipher_ids", {})
    leaf = ssl_object.getpeercert(binary_form=True)
    # Python 3.11's ssl gives only the peer's leaf certificate, not the rest of its chain.
    chain = [ssl.DER_cert_to_PEM_cert(leaf)] if leaf else []
    verified = ssl_object.getpeercert() or {}
    cipher = ssl_object.cipher()
    version = ssl_object.version()
    return {
        "server_cert": server_cert,
        "client_cert_chain": chain,
        "client_cert_name": rfc4514_name(verified.get("subject")),
        # OpenSSL fails the handshake on a client certificate it cannot verify, so a
        # connection that got this far has none to report.
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(version or ""),
        "cipher_suite": cipher_ids.get(cipher[0]) if cipher else None,
        "tls_unique": ssl_object.get_channel_binding("tls-unique"),
    }


def connection_tls_extension(transport: Any) -> dict[str, Any] | None:
    """The ``tls`` extension of a connection: a non-asyncio transport offers it ready-made as
    extra info 'asgi.tls', an asyncio one offers its ``ssl_object``."""
    ready: dict[str, Any] | None = transport.get_extra_info("asgi.tls")
    if ready is not None:
        return ready
    ssl_object = transport.get_extra_info("ssl_object")
    return tls_extension(ssl_object) if ssl_object is not None else None


def _pem(certificate: Any) -> str:
    """PEM text of a cryptography certificate (Twisted's TLS requires cryptography)."""
    from cryptography.hazmat.primitives.serialization import Encoding

    pem: bytes = certificate.public_bytes(Encoding.PEM)
    return pem.decode("ascii")


def openssl_tls_extension(connection: Any) -> dict[str, Any]:
    """The ASGI ``tls`` extension for a pyOpenSSL connection (Twisted's TLS) after the handshake."""
    if not _OPENSSL_CIPHER_IDS:
        ciphers = ssl.create_default_context().get_ciphers()
        _OPENSSL_CIPHER_IDS.update({cipher["name"]: cipher["id"] & 0xFFFF for cipher in ciphers})
    leaf = connection.get_peer_certificate(as_cryptography=True)
    chain = [_pem(leaf)] if leaf is not None else []
    # On the server side OpenSSL's peer chain leaves out the peer's own certificate, and may
    # hold the verified chain up to the trusted root, which the client did not send (RFC 8446
    # §4.4.2 lets it omit a self-signed root): report what stdlib ssl would, minus roots.
    for certificate in connection.get_peer_cert_chain(as_cryptography=True) or []:
        pem = _pem(certificate)
        if pem not in chain and certificate.subject != certificate.issuer:
            chain.append(pem)
    own = connection.get_certificate(as_cryptography=True)
    return {
        "server_cert": _pem(own) if own is not None else None,
        "client_cert_chain": chain,
        "client_cert_name": leaf.subject.rfc4514_string() if leaf is not None else None,
        "client_cert_error": None,  # an unverifiable client certificate fails the handshake
        "tls_version": _TLS_VERSIONS.get(connection.get_protocol_version_name()),
        "cipher_suite": _OPENSSL_CIPHER_IDS.get(connection.get_cipher_name()),
        "tls_unique": None,  # see the module docstring
    }


_OPENSSL_CIPHER_IDS: dict[str, int] = {}
