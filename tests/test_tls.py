"""aiohttp's default client contexts get their CA store after the handshake (sidecar/tls.py),
and the sync client still verifies a real HTTPS server with it.

Each case runs in a fresh interpreter: pytest has imported aiohttp already, with its contexts
loaded the ordinary way. The CA is made here and handed to OpenSSL through ``SSL_CERT_FILE``,
which ``set_default_verify_paths()`` reads when it runs, so only a context loaded *after* the
deferral verifies the test server.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import subprocess
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parents[1]


def _make_ca_and_server_cert(folder: Path) -> tuple[Path, Path, Path]:
    """A CA (``ca.pem``) and a certificate for 127.0.0.1 it signed (``server.pem``, ``server.key``)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sidecar test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


SCRIPT = """
import asyncio, ssl, sys
from sidecar import tls

with tls.deferred_ca_loading():
    import aiohttp
    from aiohttp import web
import aiohttp.connector

verified = aiohttp.connector._SSL_CONTEXT_VERIFIED
print("deferred", tls.pending(), verified.cert_store_stats()["x509_ca"])
print("after the block", ssl.create_default_context().cert_store_stats()["x509_ca"])

from sidecar.secrets import SecretStore
from sidecar.sync.client import CloudClient, RetryPolicy

async def main():
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(sys.argv[1], sys.argv[2])
    app = web.Application()
    app.router.add_get("/api/v1/health", lambda r: web.json_response({"status": "ok", "version": "t"}))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
    await site.start()
    port = runner.addresses[0][1]
    client = CloudClient(f"https://127.0.0.1:{port}", SecretStore({}), policy=RetryPolicy(attempts=1))
    ok = await client.health()
    await client.close()
    await runner.cleanup()
    print("health", ok, tls.pending(), verified.cert_store_stats()["x509_ca"])

asyncio.run(main())
"""


def test_the_sync_client_verifies_https_with_the_deferred_ca_store(tmp_path: Path) -> None:
    ca, cert, key = _make_ca_and_server_cert(tmp_path)
    env = {**os.environ, "SSL_CERT_FILE": str(ca), "SSL_CERT_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(cert), str(key)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    # the import recorded aiohttp's two contexts and loaded no CA into them
    assert lines[0] == "deferred 2 0"
    # outside the block contexts load as always (the test CA, from SSL_CERT_FILE)
    assert lines[1] == "after the block 1"
    # the client loaded the store before connecting, and the test CA verified the server
    assert lines[2] == "health True 0 1"
