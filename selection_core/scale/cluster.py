"""Joining a Ray cluster, with one clear line when that cannot work.

Why a reachability check first: `ray.init` on an address nobody listens at retries for minutes
before it fails; a user who mistyped the address should know in seconds.
"""
from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any

from ..spine.errors import ConfigError

INSTALL_HINT = 'pip install "ray[data]==2.60.0"'
CONNECT_TIMEOUT_S = 5.0
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # selection_core/


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(f"--ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def _host_port(address: str) -> tuple[str, int] | None:
    """HOST:PORT of an explicit address (ray://HOST:PORT too); None for 'auto'."""
    text = address.removeprefix("ray://")
    if text == "auto" or ":" not in text:
        return None
    host, _, port = text.rpartition(":")
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        raise ConfigError(f"--ray {address}: not a Ray address (use local, auto, HOST:PORT or "
                          "ray://HOST:PORT)") from None


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    target = _host_port(address)
    if target is None:
        return
    try:
        socket.create_connection(target, timeout=timeout_s).close()
    except OSError as exc:
        raise ConfigError(f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}); "
                          "start it with `ray start --head` there, or check the address and "
                          "port") from None


def connect(address: str, num_cpus: int | None = None) -> Any:
    """Start (`local`) or join (an address) a Ray cluster once per process; returns `ray`.

    The workers import this very package: a local cluster finds it on PYTHONPATH, a remote one
    receives it as a runtime-env module (its dependencies must be installed on every node)."""
    ray = import_ray()
    if address != "local":
        check_reachable(address)
    if ray.is_initialized():
        return ray
    if address == "local":
        env = {"PYTHONPATH": os.pathsep.join(
            p for p in (str(PACKAGE_DIR.parent), os.environ.get("PYTHONPATH")) if p)}
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), include_dashboard=False,
                 log_to_driver=False, logging_level=logging.WARNING,
                 runtime_env={"env_vars": env})
    else:
        try:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING,
                     runtime_env={"py_modules": [str(PACKAGE_DIR)]})
        except ConnectionError as exc:
            raise ConfigError(f"cannot join the Ray cluster at {address} ({exc}); a cluster with "
                              "token authentication (Ray's default) also needs RAY_AUTH_MODE=token "
                              "and its token here (~/.ray/auth_token or RAY_AUTH_TOKEN)") from None
    _quiet_ray_data()
    return ray


def _quiet_ray_data() -> None:
    """Our own progress bar reports shards; Ray Data's bars and plan dumps would interleave."""
    from ray.data import DataContext

    logging.getLogger("ray.data").setLevel(logging.WARNING)
    context = DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
