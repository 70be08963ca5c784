"""A SASL_SSL broker (SCRAM-SHA-512 over TLS on loopback, certificates made here): the settings
connect to it, and a wrong password or a wrong CA is a one-line error that says which."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka_helpers import read_all

from consumers.bus import BusError
from consumers.bus.kafka import KafkaBus
from consumers.bus.kafka_broker import KafkaBroker, SecureListener, ensure_jars, kafka_home
from consumers.bus.topics import topic_specs
from consumers.settings import KafkaSettings, SecretStr, TopicSettings

pytestmark = pytest.mark.kafka
USER, PASSWORD = "livetag", "s3cret-Passw0rd"


def _ca_and_server(folder: Path) -> tuple[Path, Path, Path]:
    """A CA, a server certificate for 127.0.0.1 signed by it (key + chain in one PEM), and a second,
    unrelated CA. Returns (ca.pem, server.pem, other-ca.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.timezone.utc)

    def name(text: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    def ca(label: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(name(label)).issuer_name(name(label))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=2))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        return key, cert

    ca_key, ca_cert = ca("livetag test CA")
    _, other_cert = ca("another CA")
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name("127.0.0.1")).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    paths = folder / "ca.pem", folder / "server.pem", folder / "other-ca.pem"
    paths[0].write_bytes(ca_cert.public_bytes(pem))
    paths[1].write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
                         + cert.public_bytes(pem) + ca_cert.public_bytes(pem))
    paths[2].write_bytes(other_cert.public_bytes(pem))
    return paths


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[KafkaBroker, Path, Path]]:
    folder = tmp_path_factory.mktemp("sasl-ssl")
    ca, server, other = _ca_and_server(folder)
    broker = KafkaBroker(folder / "broker", ensure_jars(kafka_home()), secure=SecureListener(server, USER, PASSWORD))
    broker.start()
    try:
        yield broker, ca, other
    finally:
        broker.stop()


def _settings(broker: KafkaBroker, ca: Path, password: str = PASSWORD) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=(f"127.0.0.1:{broker.secure_port}",), security_protocol="SASL_SSL",
                         sasl_mechanism="SCRAM-SHA-512", sasl_username=USER, sasl_password=SecretStr(password),
                         ssl_cafile=str(ca))


def test_settings_connect_with_scram_over_tls(secure_broker: tuple[KafkaBroker, Path, Path]) -> None:
    broker, ca, _ = secure_broker
    bus = KafkaBus.from_settings(_settings(broker, ca))
    bus.create_topics(topic_specs(TopicSettings(prefix="sec.", partitions=1)))
    producer = bus.producer()
    producer.produce("sec.matches", b"s1", b"over TLS")
    producer.flush(10)
    producer.close()
    assert [r.value for r in read_all(bus, "sec.matches", 1)] == [b"over TLS"]


@pytest.mark.parametrize(("change", "says"), [("password", "authentication failed"), ("ca", "TLS handshake failed")])
def test_wrong_credentials_or_ca_say_so_instead_of_blaming_the_broker(
    secure_broker: tuple[KafkaBroker, Path, Path], change: str, says: str
) -> None:
    broker, ca, other = secure_broker
    settings = _settings(broker, other) if change == "ca" else _settings(broker, ca, password="wrong")
    with pytest.raises(BusError, match=says) as caught:
        KafkaBus.from_settings(settings).create_topics(topic_specs(TopicSettings(prefix="sec2.", partitions=1)))
    assert "is the broker running" not in str(caught.value) and PASSWORD not in str(caught.value)
