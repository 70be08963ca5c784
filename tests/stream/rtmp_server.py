"""A throw-away nginx with the RTMP module, for tests that publish and play real RTMP streams.

Usage::

    with RtmpServer.start(tmp_path) as server:
        push_to_rtmp(clip, server.url("live", "cam-1"))

``RtmpServer.available()`` says whether Debian's nginx and ``ngx_rtmp_module.so`` are installed.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from pathlib import Path

from local_ports import free_port

NGINX = Path("/usr/sbin/nginx")
RTMP_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")

CONFIG = """
daemon off;
master_process off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log info;
load_module {module};
events {{ worker_connections 128; }}
rtmp {{
    server {{
        listen 127.0.0.1:{port};
        chunk_size 4096;
        application live {{
            live on;
            record off;
            wait_key on;
            wait_video on;
        }}
    }}
}}
"""



class RtmpServer:
    """One nginx process serving RTMP on ``port`` with the ``live`` application."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, root: Path) -> None:
        self.process = process
        self.port = port
        self.root = root

    @staticmethod
    def available() -> bool:
        """True when nginx and its RTMP module are installed."""
        return NGINX.exists() and RTMP_MODULE.exists()

    @classmethod
    def start(cls, root: Path, timeout_s: float = 10.0) -> RtmpServer:
        """Write a config under ``root``, start nginx in the foreground, wait until it listens."""
        root.mkdir(parents=True, exist_ok=True)
        last_error = ""
        for _ in range(3):  # the free port can be taken between probing and binding
            port = free_port()
            conf = root / "nginx.conf"
            conf.write_text(CONFIG.format(root=root, module=RTMP_MODULE, port=port))
            process = subprocess.Popen(
                [str(NGINX), "-p", str(root), "-c", str(conf), "-e", str(root / "error.log")],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and process.poll() is None:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return cls(process, port, root)
                time.sleep(0.05)
            stderr = process.stderr.read().decode(errors="replace") if process.poll() is not None and process.stderr else ""
            _terminate(process)
            last_error = stderr.strip() or "nginx did not start listening in time"
        raise RuntimeError(f"nginx RTMP server did not start: {last_error}")

    def url(self, app: str, name: str) -> str:
        """``rtmp://127.0.0.1:PORT/app/name``."""
        return f"rtmp://127.0.0.1:{self.port}/{app}/{name}"

    def error_log(self) -> str:
        """nginx's error log so far (for assertion messages)."""
        path = self.root / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Stop this nginx process and wait for it."""
        _terminate(self.process)

    def __enter__(self) -> RtmpServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, 9)
            process.wait(timeout=5)
    if process.stderr:
        process.stderr.close()
