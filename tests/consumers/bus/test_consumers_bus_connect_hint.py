"""The one-line reason for a failed Kafka connection, from what kafka-python logged while it retried."""

from __future__ import annotations

import logging

import pytest
from kafka.errors import KafkaTimeoutError

from consumers.bus import BusError
from consumers.bus.kafka_producer import connect

CONFIG = {"bootstrap_servers": ["127.0.0.1:9093"], "sasl_plain_username": "livetag",
          "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_password": "not-in-the-message", "ssl_cafile": "/ca.pem"}
DISCONNECTED = "<KafkaSSLTransport [127.0.0.1:9093<-46968]>: socket disconnected"
AUTH = "Connection lost: [Error 58] SaslAuthenticationFailedError: Authentication failed during authentication"
TLS = "Connection failed: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"
REFUSED = "Connection lost: KafkaConnectionError: 111 ECONNREFUSED"


def _config(protocol: str) -> dict[str, object]:
    return {**CONFIG, "security_protocol": protocol}


def _client_that_logs(lines: list[str]):
    def factory(**config: object) -> None:
        log = logging.getLogger("kafka.net.manager")
        for line in lines:
            log.warning(line)
        raise KafkaTimeoutError("Unable to bootstrap from ['127.0.0.1:9093']")

    return factory


@pytest.mark.parametrize(
    ("lines", "protocol", "says"),
    [
        ([DISCONNECTED] * 200 + [AUTH] + [DISCONNECTED] * 20, "SASL_SSL", "authentication failed for user 'livetag'"),
        ([DISCONNECTED] * 200 + [TLS], "SASL_SSL", "TLS handshake failed"),
        # A refused login whose reason never reached the client: the broker hung up mid-login.
        ([DISCONNECTED] * 9, "SASL_SSL", "authentication failed, most likely: .* login of user 'livetag'"),
        ([DISCONNECTED] * 9, "SSL", "is the broker running"),
        ([REFUSED] * 9, "SASL_SSL", "is the broker running"),
    ],
)
def test_the_cause_is_named_however_late_it_was_logged(lines: list[str], protocol: str, says: str) -> None:
    kafka_log = logging.getLogger("kafka")
    before = (list(kafka_log.handlers), kafka_log.level, kafka_log.propagate)
    with pytest.raises(BusError, match=says) as caught:
        connect(_client_that_logs(lines), _config(protocol), "admin client")
    message = str(caught.value)
    assert message.startswith("cannot connect the Kafka admin client to 127.0.0.1:9093: KafkaTimeoutError")
    assert "not-in-the-message" not in message and "\n" not in message
    assert (list(kafka_log.handlers), kafka_log.level, kafka_log.propagate) == before  # the listener is gone
