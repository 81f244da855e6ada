"""The policy side of an evaluation: observations as a policy batch, one policy state per lane,
and a torch RNG stream per wave of episodes."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from sir.envs.spec import IMAGE_FEATURE_PREFIX


def features_to_batch(rows: list[dict[str, np.ndarray]], tasks: list[str]) -> dict[str, Any]:
    """Observations of several envs as one batch, in LeRobotDataset's conventions
    (state float32; images CHW float in [0, 1])."""
    batch: dict[str, Any] = {}
    for key in rows[0]:
        stacked = torch.from_numpy(np.stack([row[key] for row in rows]))
        if key.startswith(IMAGE_FEATURE_PREFIX):
            batch[key] = stacked.permute(0, 3, 1, 2).float().div_(255.0)
        else:
            batch[key] = stacked
    batch["task"] = list(tasks)
    return batch


def to_policy_batch(features: dict[str, np.ndarray], task: str) -> dict[str, Any]:
    """One observation as a batch of one."""
    return features_to_batch([features], [task])


def clone_policy(policy: Any) -> Any:
    """A second instance of ``policy`` sharing its weights but not its per-episode state.

    lerobot policies keep their action queue (ACT, Diffusion, ...) or ensembler on the
    instance; two lanes of envs stepping out of phase need one each. Parameters and buffers
    are put in deepcopy's memo, so they are shared, never copied.
    """
    tensors = itertools.chain(policy.parameters(), policy.buffers())
    memo = {id(t): t for t in tensors}
    return copy.deepcopy(policy, memo)


def policy_device(policy: Any) -> torch.device:
    try:
        return next(iter(policy.parameters())).device
    except (StopIteration, AttributeError, TypeError):
        return torch.device("cpu")


def wave_seed(seed: int, wave: int) -> int:
    return int(np.random.SeedSequence([seed, wave]).generate_state(1)[0])


class RngStream:
    """A torch RNG stream of its own for one wave of episodes.

    A stochastic policy (Diffusion samples noise) draws from torch's global RNG; lanes call
    it in an order that depends on timing, so each wave swaps in its own stream around its
    calls. The caller's global state is left as it was.
    """

    def __init__(self, seed: int, device: torch.device):
        self.cuda = device.type == "cuda"
        self.cpu_state = torch.Generator().manual_seed(seed).get_state()
        self.cuda_state = None
        if self.cuda:
            self.cuda_state = torch.Generator(device=device).manual_seed(seed).get_state()
            self.device = device

    @contextmanager
    def active(self) -> Iterator[None]:
        saved = torch.get_rng_state()
        saved_cuda = torch.cuda.get_rng_state(self.device) if self.cuda else None
        torch.set_rng_state(self.cpu_state)
        if self.cuda:
            torch.cuda.set_rng_state(self.cuda_state, self.device)
        try:
            yield
        finally:
            self.cpu_state = torch.get_rng_state()
            torch.set_rng_state(saved)
            if self.cuda:
                self.cuda_state = torch.cuda.get_rng_state(self.device)
                torch.cuda.set_rng_state(saved_cuda, self.device)
