"""A throwaway PKI served for real on 127.0.0.1: root and issuing CA, clerks' and agencies' certs
(one revoked, one expired), an RFC 3161 TSA, an OCSP responder and CRLs over HTTP.

Everything is generated at start-up (nothing secret is kept in the repository):

    with running_pki(tmp_path) as pki:
        clerk = pki.identity("clerk")      # cert, key, PEM files, a PKCS#12 file, its chain
        pki.tsa_url, pki.ocsp_url, pki.crl_url, pki.root_pem, pki.issuing_pem

Built on real libraries only: ``cryptography`` for keys, certificates, OCSP and CRLs, pyHanko's
time-stamper for RFC 3161 tokens, aiohttp for HTTP. ``python -m tests.support.pki DIR`` serves one
until interrupted (for trying the CLI by hand).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from asn1crypto import keys as asn1_keys
from asn1crypto import tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

__all__ = ["P12_PASSWORD", "Identity", "TestPKI", "running_pki"]

P12_PASSWORD = b"test-pass"
ORGANIZATION_IDENTIFIER = ObjectIdentifier("2.5.4.97")
UTC = dt.UTC


@dataclass
class Identity:
    """A certificate with its key, as files and objects."""

    name: str
    cert: x509.Certificate
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    cert_pem: Path
    key_pem: Path
    p12: Path
    chain: list[x509.Certificate] = field(default_factory=list)  # issuer first, root excluded

    @property
    def cert_der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)


# name: (common name, organisation, organ id, key kind, special)
PROFILES = {
    "clerk": ("Nguyễn Văn An", "Văn phòng Chính phủ", "000.00.00.G22", "rsa", None),
    "leader": ("Trần Thị Bình", "Văn phòng Chính phủ", "000.00.00.G22", "rsa", None),
    "seal": ("Văn phòng Chính phủ", "Văn phòng Chính phủ", "000.00.00.G22", "ec256", None),
    "clerk_ec384": ("Lê Văn Cường", "Văn phòng Chính phủ", "000.00.00.G22", "ec384", None),
    "province": ("Phạm Thị Dung", "UBND tỉnh Quảng Ninh", "000.00.00.H49", "rsa", None),
    "revoked": ("Hoàng Văn Em", "Văn phòng Chính phủ", "000.00.00.G22", "rsa", "revoked"),
    "expired": ("Đỗ Thị Giang", "Văn phòng Chính phủ", "000.00.00.G22", "rsa", "expired"),
    "hub": ("lienthong hub", "Trung tâm tích hợp dữ liệu", "000.00.00.H49", "rsa", None),
    # names no OCSP responder and no CRL distribution point: nothing to check revocation with
    "no_revinfo": ("Vũ Thị Hạnh", "Văn phòng Chính phủ", "000.00.00.G22", "rsa", "no_revinfo"),
    # The hub's next key from the same CA, for key rotation tests.
    "hub_next": ("lienthong hub 2", "Trung tâm tích hợp dữ liệu", "000.00.00.H49", "rsa", None),
}


class TestPKI:
    """Generates the hierarchy and answers TSA, OCSP and CRL requests over HTTP."""

    __test__ = False  # not a pytest test class

    def __init__(self, directory: Path, port: int) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        base = f"http://127.0.0.1:{port}"
        self.tsa_url = f"{base}/tsa"
        self.ocsp_url = f"{base}/ocsp"
        self.crl_url = f"{base}/crl/issuing.crl"
        self.root_crl_url = f"{base}/crl/root.crl"
        self.now = dt.datetime.now(UTC)
        self.revoked: dict[int, dt.datetime] = {}
        self._identities: dict[str, Identity] = {}
        self._build()

    # ----- generation -------------------------------------------------------------------

    @staticmethod
    def _new_key(kind: str):
        if kind == "ec256":
            return ec.generate_private_key(ec.SECP256R1())
        if kind == "ec384":
            return ec.generate_private_key(ec.SECP384R1())
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def _name(self, cn: str, org: str | None = None, organ_id: str | None = None) -> x509.Name:
        attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "VN")]
        if org:
            attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
        if organ_id:
            attrs.append(x509.NameAttribute(ORGANIZATION_IDENTIFIER, organ_id))
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
        return x509.Name(attrs)

    def _issue(
        self,
        subject: x509.Name,
        key,
        issuer_cert: x509.Certificate | None,
        issuer_key,
        *,
        ca: bool = False,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        eku: list | None = None,
        crl_url: str | None = None,
        ocsp: bool = False,
        ocsp_nocheck: bool = False,
    ) -> x509.Certificate:
        now = self.now
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer_cert.subject if issuer_cert else subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - dt.timedelta(days=365))
            .not_valid_after(not_after or now + dt.timedelta(days=365 * (10 if ca else 2)))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        )
        signer_key = issuer_key or key
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()), False
        )
        if ca:
            usage = dict(
                key_cert_sign=True, crl_sign=True, digital_signature=False, content_commitment=False
            )
        else:
            usage = dict(
                key_cert_sign=False,
                crl_sign=False,
                digital_signature=True,
                content_commitment=eku is None,
            )
        builder = builder.add_extension(
            x509.KeyUsage(
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
                **usage,
            ),
            critical=True,
        )
        if eku:
            builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=True)
        if crl_url:
            builder = builder.add_extension(
                x509.CRLDistributionPoints(
                    [
                        x509.DistributionPoint(
                            [x509.UniformResourceIdentifier(crl_url)], None, None, None
                        )
                    ]
                ),
                critical=False,
            )
        if ocsp:
            builder = builder.add_extension(
                x509.AuthorityInformationAccess(
                    [
                        x509.AccessDescription(
                            x509.oid.AuthorityInformationAccessOID.OCSP,
                            x509.UniformResourceIdentifier(self.ocsp_url),
                        )
                    ]
                ),
                critical=False,
            )
        if ocsp_nocheck:
            builder = builder.add_extension(x509.OCSPNoCheck(), critical=False)
        algorithm = hashes.SHA256()
        return builder.sign(signer_key, algorithm)

    def _save(self, name: str, cert, key, chain: list) -> Identity:
        cert_pem = self.dir / f"{name}.pem"
        key_pem = self.dir / f"{name}.key.pem"
        p12 = self.dir / f"{name}.p12"
        cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_pem.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        p12.write_bytes(
            pkcs12.serialize_key_and_certificates(
                name.encode(), key, cert, chain, serialization.BestAvailableEncryption(P12_PASSWORD)
            )
        )
        identity = Identity(name, cert, key, cert_pem, key_pem, p12, chain)
        self._identities[name] = identity
        return identity

    def _build(self) -> None:
        root_key = self._new_key("rsa")
        root = self._issue(
            self._name("Lienthong Test Root CA", "Lienthong Test PKI"),
            root_key,
            None,
            None,
            ca=True,
        )
        self.root = self._save("root", root, root_key, [])
        issuing_key = self._new_key("rsa")
        issuing = self._issue(
            self._name("Lienthong Test Issuing CA", "Lienthong Test PKI"),
            issuing_key,
            root,
            root_key,
            ca=True,
            crl_url=self.root_crl_url,
        )
        self.issuing = self._save("issuing", issuing, issuing_key, [root])
        self.root_pem, self.issuing_pem = self.root.cert_pem, self.issuing.cert_pem
        chain = [issuing]
        for name, (cn, org, organ_id, kind, special) in PROFILES.items():
            key = self._new_key(kind)
            window = {}
            if special == "expired":
                window = dict(
                    not_before=self.now - dt.timedelta(days=400),
                    not_after=self.now - dt.timedelta(days=2),
                )
            pointers = special != "no_revinfo"
            cert = self._issue(
                self._name(cn, org, organ_id),
                key,
                issuing,
                issuing_key,
                crl_url=self.crl_url if pointers else None,
                ocsp=pointers,
                **window,
            )
            self._save(name, cert, key, chain)
            if special == "revoked":
                self.revoked[cert.serial_number] = self.now - dt.timedelta(days=1)
        tsa_key = self._new_key("rsa")
        tsa = self._issue(
            self._name("Lienthong Test TSA", "Lienthong Test PKI"),
            tsa_key,
            issuing,
            issuing_key,
            eku=[ExtendedKeyUsageOID.TIME_STAMPING],
            crl_url=self.crl_url,
            ocsp=True,
        )
        self._save("tsa", tsa, tsa_key, chain)
        ocsp_key = self._new_key("rsa")
        responder = self._issue(
            self._name("Lienthong Test OCSP", "Lienthong Test PKI"),
            ocsp_key,
            issuing,
            issuing_key,
            eku=[ExtendedKeyUsageOID.OCSP_SIGNING],
            ocsp_nocheck=True,
        )
        self._save("ocsp", responder, ocsp_key, chain)
        # A second, untrusted hierarchy with the same names: for forgery tests.
        rogue_root_key = self._new_key("rsa")
        rogue_root = self._issue(
            self._name("Lienthong Test Root CA", "Lienthong Test PKI"),
            rogue_root_key,
            None,
            None,
            ca=True,
        )
        rogue_key = self._new_key("rsa")
        rogue = self._issue(
            self._name(*PROFILES["clerk"][:3]), rogue_key, rogue_root, rogue_root_key
        )
        self._save("untrusted", rogue, rogue_key, [rogue_root])

    def issue_signer(self, name: str, cn: str, org: str, organ_id: str) -> Identity:
        """A new signer certificate from the issuing CA (with OCSP and CRL pointers) whose
        organizationIdentifier is ``organ_id`` as written, e.g. in ETSI form ``VATVN-...``."""
        key = self._new_key("rsa")
        cert = self._issue(
            self._name(cn, org, organ_id),
            key,
            self.issuing.cert,
            self.issuing.key,
            crl_url=self.crl_url,
            ocsp=True,
        )
        return self._save(name, cert, key, [self.issuing.cert])

    def identity(self, name: str) -> Identity:
        """One of: root, issuing, tsa, ocsp, untrusted, and the keys of :data:`PROFILES`."""
        return self._identities[name]

    # ----- services ---------------------------------------------------------------------

    def _crl(self, issuer: Identity, revoked: dict[int, dt.datetime]) -> bytes:
        now = dt.datetime.now(UTC)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(issuer.cert.subject)
            .last_update(now - dt.timedelta(minutes=5))
            .next_update(now + dt.timedelta(days=1))
            .add_extension(x509.CRLNumber(int(now.timestamp())), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), False
            )
        )
        for serial, when in revoked.items():
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(when)
                .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False)
                .build()
            )
        return builder.sign(issuer.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    def _issued_by_issuing(self) -> dict[int, x509.Certificate]:
        return {
            i.cert.serial_number: i.cert
            for i in self._identities.values()
            if i.cert.issuer == self.issuing.cert.subject
        }

    def _ocsp_response(self, der: bytes) -> bytes:
        try:
            request = ocsp.load_der_ocsp_request(der)
        except ValueError:
            return ocsp.OCSPResponseBuilder.build_unsuccessful(
                ocsp.OCSPResponseStatus.MALFORMED_REQUEST
            ).public_bytes(serialization.Encoding.DER)
        cert = self._issued_by_issuing().get(request.serial_number)
        if cert is None:
            return ocsp.OCSPResponseBuilder.build_unsuccessful(
                ocsp.OCSPResponseStatus.UNAUTHORIZED
            ).public_bytes(serialization.Encoding.DER)
        now = dt.datetime.now(UTC)
        revoked_at = self.revoked.get(request.serial_number)
        responder = self.identity("ocsp")
        builder = (
            ocsp.OCSPResponseBuilder()
            .add_response(
                cert=cert,
                issuer=self.issuing.cert,
                algorithm=hashes.SHA1()
                if request.hash_algorithm.name == "sha1"
                else hashes.SHA256(),
                cert_status=ocsp.OCSPCertStatus.REVOKED if revoked_at else ocsp.OCSPCertStatus.GOOD,
                this_update=now - dt.timedelta(minutes=1),
                next_update=now + dt.timedelta(hours=1),
                revocation_time=revoked_at,
                revocation_reason=x509.ReasonFlags.key_compromise if revoked_at else None,
            )
            .responder_id(ocsp.OCSPResponderEncoding.HASH, responder.cert)
            .certificates([responder.cert])
        )
        for extension in request.extensions:
            if isinstance(extension.value, x509.OCSPNonce):
                builder = builder.add_extension(extension.value, critical=False)
        return builder.sign(responder.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    def _timestamper(self):
        from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper
        from pyhanko_certvalidator.registry import SimpleCertificateStore

        tsa = self.identity("tsa")
        store = SimpleCertificateStore.from_certs(
            [
                asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER))
                for c in (tsa.cert, self.issuing.cert)
            ]
        )
        key_info = asn1_keys.PrivateKeyInfo.load(
            tsa.key.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return DummyTimeStamper(
            asn1_x509.Certificate.load(tsa.cert_der), key_info, certs_to_embed=store
        )

    def app(self) -> web.Application:
        """The HTTP face of the PKI."""
        stamper = self._timestamper()
        self.requests: dict[str, int] = {"tsa": 0, "ocsp": 0, "crl": 0}

        async def tsa_handler(request: web.Request) -> web.Response:
            self.requests["tsa"] += 1
            req = tsp.TimeStampReq.load(await request.read())
            resp = await stamper.async_request_tsa_response(req)
            return web.Response(body=resp.dump(), content_type="application/timestamp-reply")

        async def ocsp_handler(request: web.Request) -> web.Response:
            self.requests["ocsp"] += 1
            return web.Response(
                body=self._ocsp_response(await request.read()),
                content_type="application/ocsp-response",
            )

        async def crl_handler(request: web.Request) -> web.Response:
            self.requests["crl"] += 1
            if request.match_info["name"] == "root.crl":
                body = self._crl(self.root, {})
            else:
                body = self._crl(self.issuing, self.revoked)
            return web.Response(body=body, content_type="application/pkix-crl")

        app = web.Application()
        app.router.add_post("/tsa", tsa_handler)
        app.router.add_post("/ocsp", ocsp_handler)
        app.router.add_get("/crl/{name}", crl_handler)
        return app


@contextlib.contextmanager
def running_pki(directory: Path) -> Iterator[TestPKI]:
    """Generate a PKI in ``directory`` and serve it on 127.0.0.1 from a background thread."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    pki = TestPKI(Path(directory), port)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    runner = web.AppRunner(pki.app(), access_log=None)

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.SockSite(runner, sock).start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, name="test-pki", daemon=True)
    thread.start()
    if not started.wait(30):
        raise RuntimeError("the test PKI did not start")
    try:
        yield pki
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        sock.close()


if __name__ == "__main__":
    import sys

    target = Path(sys.argv[1] if len(sys.argv) > 1 else "var/test-pki")
    with running_pki(target) as served:
        print(
            f"test PKI in {target}: TSA {served.tsa_url}  OCSP {served.ocsp_url}  "
            f"CRL {served.crl_url}  (Ctrl-C to stop)"
        )
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
