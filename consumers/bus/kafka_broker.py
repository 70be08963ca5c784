"""A single-node KRaft Kafka broker on loopback, for development and the test suite.

The broker jars come from Maven Central through ``scripts/kafka/pom.xml`` (Maven with strict
checksums), cached under ``~/.cache/livetag/kafka`` or ``$LIVETAG_KAFKA_HOME``. ``KafkaBroker`` formats
fresh KRaft storage with a random cluster id, starts controller and broker in one JVM on two free
loopback ports, waits until the broker answers metadata requests and stops it cleanly. The broker logs
to ``<work_dir>/broker.log`` (log4j2), never to the caller's terminal.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from stream.errors import LiveTagError

log = logging.getLogger(__name__)

POM_PATH = Path(__file__).resolve().parents[2] / "scripts" / "kafka" / "pom.xml"
_READY_MARKER = ".complete"
_MAIN_CLASS = "kafka.Kafka"
_STORAGE_TOOL = "kafka.tools.StorageTool"


class BrokerError(LiveTagError):
    """The local broker could not be fetched, formatted, started or stopped."""


def kafka_home(environ: Mapping[str, str] | None = None) -> Path:
    """Folder of the cached broker jars: ``$LIVETAG_KAFKA_HOME`` or ``~/.cache/livetag/kafka``.

    Args:
        environ: Environment to read (``os.environ`` when None); read at call time, never at import.
    """
    env = os.environ if environ is None else environ
    configured = env.get("LIVETAG_KAFKA_HOME")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "livetag" / "kafka"


def ensure_jars(home: Path, pom: Path = POM_PATH, mvn: str = "mvn") -> Path:
    """Return ``home/libs`` holding the pinned broker jars, fetching them with Maven on first use.

    Maven runs with ``-C`` (strict checksums): a jar whose SHA-1 differs from the published one fails
    the fetch. Jars land in a temporary folder renamed into place only when the fetch succeeded, so an
    interrupted fetch never leaves a half-filled cache.

    Raises:
        BrokerError: Maven is missing or the fetch failed.
    """
    libs = home / "libs"
    if (libs / _READY_MARKER).exists():
        return libs
    if shutil.which(mvn) is None:
        raise BrokerError(f"'{mvn}' not found: install Maven (apt-get install maven) to fetch the Kafka jars")
    home.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="libs.", dir=home))
    cmd = [
        mvn, "-q", "-B", "-C", "-f", str(pom), "dependency:copy-dependencies",
        "-DincludeScope=runtime", f"-DoutputDirectory={staging}",
    ]  # fmt: skip
    log.info("fetching the Kafka broker jars with Maven into %s (first run only)", libs)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not any(staging.glob("kafka_*.jar")):
        shutil.rmtree(staging, ignore_errors=True)
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no output"]
        raise BrokerError(f"Maven could not fetch the Kafka jars (exit {proc.returncode}): {tail[0]}")
    (staging / _READY_MARKER).write_text(pom.read_text())
    if libs.exists():
        shutil.rmtree(libs)
    staging.rename(libs)
    return libs


def random_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (22 characters)."""
    while True:
        text = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class SecureListener:
    """A second client listener with SASL/SCRAM over TLS (for tests of secured clusters).

    Attributes:
        keystore_pem: PEM file holding the broker's private key (unencrypted PKCS#8) and certificate.
        username: The SCRAM user created when the storage is formatted.
        password: Its password.
        mechanism: ``SCRAM-SHA-256`` or ``SCRAM-SHA-512``.
    """

    keystore_pem: Path
    username: str
    password: str
    mechanism: str = "SCRAM-SHA-512"


def _server_properties(data_dir: Path, port: int, controller_port: int,
                       secure: SecureListener | None = None, secure_port: int = 0) -> str:
    lines = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": "1",
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "log.cleaner.backoff.ms": "1000",
    }
    if secure is not None:  # clients may also connect with SASL/SCRAM over TLS on secure_port
        lines["listeners"] += f",SASL_SSL://127.0.0.1:{secure_port}"
        lines["advertised.listeners"] += f",SASL_SSL://127.0.0.1:{secure_port}"
        lines["listener.security.protocol.map"] += ",SASL_SSL:SASL_SSL"
        mech = secure.mechanism.lower()
        lines.update({
            "listener.name.sasl_ssl.sasl.enabled.mechanisms": secure.mechanism,
            f"listener.name.sasl_ssl.{mech}.sasl.jaas.config":
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "listener.name.sasl_ssl.ssl.keystore.type": "PEM",
            "listener.name.sasl_ssl.ssl.keystore.location": str(secure.keystore_pem),
        })
    return "".join(f"{k}={v}\n" for k, v in lines.items())


def _log4j_properties(log_file: Path) -> str:
    return (
        "status = warn\n"
        "appender.file.type = File\n"
        "appender.file.name = file\n"
        f"appender.file.fileName = {log_file}\n"
        "appender.file.layout.type = PatternLayout\n"
        "appender.file.layout.pattern = [%d] %p %m (%c)%n\n"
        "rootLogger.level = INFO\n"
        "rootLogger.appenderRef.file.ref = file\n"
    )


class KafkaBroker:
    """One KRaft controller+broker JVM bound to 127.0.0.1 on free ports.

    Args:
        work_dir: Folder for config, data and ``broker.log`` (created; a fresh cluster each start).
        libs: Folder of broker jars (``ensure_jars``).
        java: Java 17+ executable.
        heap_mb: JVM heap size.
    """

    def __init__(self, work_dir: Path, libs: Path, java: str = "java", heap_mb: int = 512, keep: bool = False,
                 secure: SecureListener | None = None) -> None:
        self.keep = keep
        self.secure = secure
        self.secure_port = 0
        self.work_dir = Path(work_dir)
        self.libs = Path(libs)
        self.java = java
        self.heap_mb = heap_mb
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """``host:port`` for clients; valid after ``start``."""
        return f"127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        """The broker's log4j output."""
        return self.work_dir / "broker.log"

    def _java(self, main: str, *args: str) -> list[str]:
        return [
            self.java, f"-Xmx{self.heap_mb}m", "-Xms64m", "-XX:+UseSerialGC", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.work_dir / 'log4j2.properties'}",
            "-cp", str(self.libs / "*"), main, *args,
        ]  # fmt: skip

    def start(self, timeout_s: float = 90.0) -> str:
        """Format storage, launch the JVM and wait until the broker serves metadata.

        Returns:
            The bootstrap address ``127.0.0.1:<port>``.

        Raises:
            BrokerError: Java is missing, formatting failed, or the broker did not become ready in time.
        """
        if self._proc is not None:
            return self.bootstrap
        if shutil.which(self.java) is None:
            raise BrokerError(f"'{self.java}' not found: install Java 17 (openjdk-17-jre-headless)")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        data_dir = self.work_dir / "data"
        reuse = self.keep and (data_dir / "meta.properties").is_file()  # a formatted log from an earlier run
        if not reuse:
            shutil.rmtree(data_dir, ignore_errors=True)
        self.port, controller_port = free_port(), free_port()
        self.secure_port = free_port() if self.secure is not None else 0
        config = self.work_dir / "server.properties"
        config.write_text(_server_properties(data_dir, self.port, controller_port, self.secure, self.secure_port))
        (self.work_dir / "log4j2.properties").write_text(_log4j_properties(self.log_file))
        if not reuse:
            scram = [] if self.secure is None else [
                "--add-scram", f"{self.secure.mechanism}=[name={self.secure.username},password={self.secure.password}]"]
            fmt = subprocess.run(
                self._java(_STORAGE_TOOL, "format", "-t", random_cluster_id(), "-c", str(config), *scram),
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if fmt.returncode != 0:
                raise BrokerError(f"formatting KRaft storage failed: {(fmt.stderr or fmt.stdout).strip()[-300:]}")
        console = (self.work_dir / "console.log").open("wb")
        self._proc = subprocess.Popen(
            self._java(_MAIN_CLASS, str(config)), stdout=console, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent,
        )  # fmt: skip
        console.close()
        try:
            self._wait_ready(timeout_s)
        except BrokerError:
            self.stop()
            raise
        log.info("Kafka broker ready at %s (log %s)", self.bootstrap, self.log_file)
        return self.bootstrap

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise BrokerError(f"the broker exited with {self._proc.returncode}; see {self.log_file}")
            if _serves_metadata(self.bootstrap):
                return
            time.sleep(0.3)
        raise BrokerError(f"the broker was not ready within {timeout_s:.0f} s; see {self.log_file}")

    def stop(self, timeout_s: float = 30.0) -> None:
        """Send SIGTERM (controlled shutdown) and wait; SIGKILL only if it hangs past ``timeout_s``."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("broker did not stop within %.0f s; killing pid %d", timeout_s, proc.pid)
            proc.kill()
            proc.wait(timeout=10)

    def __enter__(self) -> KafkaBroker:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _die_with_parent() -> None:
    """In the child before exec (Linux): SIGTERM the broker when the process that started it dies,
    so a killed test run or command never leaves a JVM behind."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _serves_metadata(bootstrap: str) -> bool:
    """True when a metadata request to ``bootstrap`` lists at least one broker."""
    host, port = bootstrap.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            pass
    except OSError:
        return False
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    except (KafkaError, OSError, ValueError):
        return False
    try:
        return bool(admin.describe_cluster().get("brokers"))
    except (KafkaError, OSError, ValueError):
        return False
    finally:
        admin.close()
