"""Where the per-row stages run: this process, a local Ray cluster, or an existing one."""
from __future__ import annotations

from dataclasses import dataclass

from ..spine.config import HashedConfig, param
from ..spine.errors import ConfigError


@dataclass(frozen=True)
class ScaleConfig(HashedConfig):
    """Speed only (nothing here changes a result, so no field enters a hash)."""

    ray: str | None = param(None, help="run on Ray: 'local' (a cluster on this machine's cores) "
                                       "or the address of an existing cluster (HOST:PORT, "
                                       "ray://HOST:10001, auto); absent: this process",
                            hash=False)
    workers: int | None = param(None, positive=True,
                                help="Ray workers, each loading the model once (unset: one "
                                     "per GPU with --gpus-per-worker, else one per CPU core "
                                     "of the cluster)", hash=False)
    gpus_per_worker: float = param(0.0, low=0.0, help="GPUs per Ray worker (0: CPU workers)",
                                   hash=False)
    cpus_per_worker: float = param(1.0, positive=True,
                                   help="CPU cores per Ray worker (its torch threads)",
                                   hash=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.ray is None and (self.workers is not None or self.gpus_per_worker):
            raise ConfigError("--workers and --gpus-per-worker need --ray local or --ray "
                              "ADDRESS")

    @property
    def enabled(self) -> bool:
        return self.ray is not None

    @property
    def worker_device(self) -> str:
        """Ray assigns each worker its GPUs (CUDA_VISIBLE_DEVICES): `cuda` is its own."""
        return "cuda" if self.gpus_per_worker > 0 else "cpu"
