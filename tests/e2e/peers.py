"""Processes the end-to-end tests start: the real console script, served on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

EXE = str(Path(sys.executable).with_name("ecocloud-ops"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_for(instance: Path, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECOCLOUD_")}
    env.update(ECOCLOUD_INSTANCE_DIR=str(instance), ECOCLOUD_DATABASE_URL=url,
               ECOCLOUD_WORKER_HEARTBEAT_SECONDS="1")
    return env


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    p = subprocess.run([EXE, *args], env=env, input=stdin, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"{args}: {p.stderr}"
    return p.stdout


def start(env: dict[str, str], *args: str, log: Path) -> subprocess.Popen[bytes]:
    fh = log.open("wb")
    return subprocess.Popen([EXE, *args], env=env, stdout=fh, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def wait_health(base: str, proc: subprocess.Popen[bytes], log: Path, *, worker: bool = False,
                timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=2) as r:
                body = json.loads(r.read())
                if not worker or body["worker"]["alive"]:
                    return dict(body)
                last = body
        except OSError as exc:
            last = exc
        time.sleep(0.3)
    raise AssertionError(f"{base} not healthy in {timeout}s: {last}\n{log.read_text()[-3000:]}")
