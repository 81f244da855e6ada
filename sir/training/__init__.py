"""The trainer: ``TrainConfig``, ``train(cfg) -> RunResult``, the train_policy CLI over
them, training state (resume), logging and sequential stages."""

from sir.training.config import TrainConfig
from sir.training.trainer import RunResult, train

__all__ = ["RunResult", "TrainConfig", "train"]
