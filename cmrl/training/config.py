"""The schema of a training run: every key of `configs/` is a field here, type-checked by OmegaConf
and range-checked by `validate()`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from cmrl.agents import AgentConfig
from cmrl.data.config import DatasetConfig
from cmrl.errors import ConfigError
from cmrl.training.loggers import LoggerConfig


@dataclass
class TrainConfig:
    agent: AgentConfig = field(default_factory=AgentConfig)  # the algorithm (configs/agent/)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)  # the offline data (configs/dataset/)
    logger: LoggerConfig = field(default_factory=LoggerConfig)  # console, files, wandb (configs/logger/)
    seed: int = 0  # seeds torch, numpy, python, the batch sampler and evaluation episodes
    steps: int = 3_000  # K: total gradient steps; the CT curriculum and LR schedules span exactly these
    batch_size: int = 256  # transitions per gradient step
    eval_every: int = 1_000  # evaluate every N steps (and always after the last); 0 = only after the last
    eval_episodes: int = 10  # episodes per evaluation, reset with seeds eval_seed + i
    eval_envs: int = 10  # environments stepped in parallel during evaluation
    eval_seed: int = 1_000_000  # first evaluation episode seed (fixed, so evaluations are comparable)
    checkpoint_every: int = 1_000  # write checkpoint.pt every N steps (and after the last); 0 = only after the last
    device: str = "auto"  # auto (cuda when available) | cpu | cuda | cuda:N
    threads: int = 0  # torch CPU threads; 0 = torch's default
    # continue a run: its checkpoint.pt (or run directory), whose config is the base; `auto` = this run
    # directory's own checkpoint.pt when it exists, else start fresh (what a requeued cluster job needs)
    resume: Optional[str] = None
    # start a new run from the weights (policy, critics, EMA) of this checkpoint.pt (or run directory),
    # with a fresh optimiser, schedule and step 0: fine-tuning, e.g. on other data of the same sizes
    init_from: Optional[str] = None
    init_normalizers: bool = True  # with init_from: also take the checkpoint's data transforms (else fit anew)

    def validate(self) -> None:
        """Range checks of every group; ConfigError names the offending key."""
        self.agent.validate("agent")
        self.dataset.validate()
        self.logger.validate()
        for key in ("steps", "batch_size", "eval_episodes", "eval_envs"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be >= 1, got {getattr(self, key)}")
        for key in ("eval_every", "checkpoint_every", "threads", "seed", "eval_seed"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key} must be >= 0, got {getattr(self, key)}")
        if self.resume not in (None, "auto") and self.init_from is not None:
            raise ConfigError(f"resume={self.resume} continues a run and init_from={self.init_from} starts a new one "
                              "from its weights: set only one of them (resume=auto continues this run directory's "
                              "checkpoint when there is one, else starts from init_from)")
        if self.device != "auto" and not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ConfigError(f"device must be auto, cpu, cuda or cuda:N; got {self.device!r}")


def to_train_config(container: Any) -> TrainConfig:
    """A composed config (DictConfig or dict) -> a validated TrainConfig; ConfigError on any problem."""
    try:
        cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(TrainConfig), container))
        assert isinstance(cfg, TrainConfig)
        cfg.validate()
    except (ValueError, OmegaConfBaseException) as err:
        raise ConfigError(f"invalid configuration: {err}") from err
    return cfg


def register_schema() -> None:
    """Register TrainConfig with Hydra's ConfigStore as `train_schema`, the base of configs/config.yaml:
    composition then rejects unknown keys and values of the wrong type."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="train_schema", node=TrainConfig)
