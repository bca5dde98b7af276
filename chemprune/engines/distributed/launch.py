"""Starting a command under ``torchrun`` (``python -m torch.distributed.run``).

One machine: ``--standalone`` (c10d rendezvous on a free local port) unless an endpoint is given.
Several machines: the same command on each, with ``nnodes`` and a common c10d rendezvous
endpoint ``HOST:PORT`` (on one of the machines) and id.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "LaunchError",
    "LaunchSpec",
    "in_torchrun",
    "launch",
    "parse_endpoint",
    "restart_count",
]


class LaunchError(ValueError):
    """Bad launch settings (process counts, rendezvous endpoint)."""


def in_torchrun() -> bool:
    """True inside a worker that torchrun started."""
    return "TORCHELASTIC_RUN_ID" in os.environ and "LOCAL_RANK" in os.environ


def restart_count() -> int:
    """How many times torchrun has restarted this worker group (0 on the first attempt)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)


def parse_endpoint(endpoint: str, *, resolve: bool = True) -> tuple[str, int]:
    """``HOST:PORT`` checked: a port in 1-65535 and (``resolve``) a host name that resolves."""
    host, sep, port = endpoint.rpartition(":")
    if not sep or not host:
        raise LaunchError(f"--rdzv-endpoint {endpoint!r} is not of the form HOST:PORT")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise LaunchError(f"--rdzv-endpoint {endpoint!r}: the port must be a number in 1-65535")
    host = host.strip("[]")
    if resolve:
        try:
            socket.getaddrinfo(host, int(port))
        except OSError as err:
            raise LaunchError(
                f"--rdzv-endpoint {endpoint!r}: cannot resolve host {host!r} ({err})"
            ) from None
    return host, int(port)


@dataclass
class LaunchSpec:
    """How many processes, where they meet, how often they may be restarted."""

    nproc: int = 1
    nnodes: int = 1
    endpoint: str | None = None
    rdzv_id: str = "chemprune"
    max_restarts: int = 0
    join_timeout_s: int = 600

    def validate(self) -> None:
        if self.nproc < 1:
            raise LaunchError(f"--nproc must be >= 1, got {self.nproc}")
        if self.nnodes < 1:
            raise LaunchError(f"--nnodes must be >= 1, got {self.nnodes}")
        if self.max_restarts < 0:
            raise LaunchError(f"--max-restarts must be >= 0, got {self.max_restarts}")
        if self.nnodes > 1 and not self.endpoint:
            raise LaunchError(
                f"--nnodes {self.nnodes} needs --rdzv-endpoint HOST:PORT (the same on every machine)"
            )
        if self.endpoint:
            parse_endpoint(self.endpoint)

    @property
    def world_size(self) -> int:
        return self.nproc * self.nnodes

    def command(self, module_args: Sequence[str]) -> list[str]:
        """The torchrun command line that runs ``python -m <module_args...>`` on every worker."""
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(self.nproc)]
        cmd += ["--nnodes", str(self.nnodes), "--max-restarts", str(self.max_restarts)]
        if self.endpoint:
            cmd += ["--rdzv-backend", "c10d", "--rdzv-endpoint", self.endpoint]
            cmd += ["--rdzv-id", self.rdzv_id, "--rdzv-conf", f"join_timeout={self.join_timeout_s}"]
        else:
            cmd += ["--standalone"]
        return [*cmd, "-m", *module_args]


def launch(
    spec: LaunchSpec, module_args: Sequence[str], *, env: dict[str, str] | None = None
) -> int:
    """Run torchrun in the foreground; returns its exit code.

    SIGTERM is relayed to torchrun (which stops its workers); SIGINT from a terminal already
    reaches torchrun and its workers, which share this process group, so it is ignored here.
    """
    spec.validate()
    env = {**os.environ, **(env or {})}
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env.setdefault("OMP_NUM_THREADS", "1")  # torchrun's default too; --threads overrides it
    proc = subprocess.Popen(spec.command(module_args), env=env)
    forward = {}

    def relay(signum: int, frame: object) -> None:
        proc.send_signal(signum)

    for sig, handler in ((signal.SIGINT, signal.SIG_IGN), (signal.SIGTERM, relay)):
        try:
            forward[sig] = signal.signal(sig, handler)
        except ValueError:  # not in the main thread
            pass
    try:
        return proc.wait()
    finally:
        for sig, old in forward.items():
            signal.signal(sig, old)
