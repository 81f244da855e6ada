"""``--val-episodes``: the policy's loss on whole episodes held out of training.

The last N selected episodes of each dataset are never trained on (``make_split_mixtures``);
at every evaluation point their loss is computed and logged as ``val/loss``, with rollouts or
without. It is the held-out signal of a run that cannot be rolled out (``--no-eval``: data from
a robot, or a layout sir cannot simulate), where the lowest validation loss chooses
best_model; lerobot 0.6 added the same idea (``eval_steps``, ``dataset.eval_split``).

The loss is lerobot's own (``policy.forward``) as training computes it (ACT's forward needs
its VAE encoder, which only runs in training mode): dropout on, batch-norm statistics frozen
so that nothing the validation sees moves the model. It is computed on the same samples every
time (a fixed stride through the held-out frames), and what it draws at random (dropout,
ACT's latent, Diffusion's noise and timesteps) comes from a generator seeded the same at
every point, with the training's random streams put back afterwards: a run with validation
trains exactly as one without.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.nn.modules.batchnorm import _BatchNorm

MAX_SAMPLES = 1024  # enough for a stable figure; the cost is a few forward passes of a batch


class ValidationLoss:
    def __init__(self, mixture: Any, batch_size: int, max_samples: int = MAX_SAMPLES):
        self.mixture = mixture
        stride = max(1, -(-len(mixture) // max_samples))
        indices = np.arange(0, len(mixture), stride)
        self.batches = [indices[i:i + batch_size].tolist() for i in range(0, len(indices), batch_size)]
        self.samples = len(indices)

    def __call__(self, policy: Any, preprocessor: Any) -> float:
        """The mean loss per sample of ``policy`` on the held-out samples."""
        from sir.data.store.batch import collate

        modes = [(m, m.training) for m in policy.modules()]
        policy.train()
        for m in policy.modules():
            if isinstance(m, _BatchNorm):
                m.eval()
        total = 0.0
        try:
            # fork_rng: the training's torch RNGs (CPU and CUDA) are restored afterwards.
            with torch.no_grad(), torch.random.fork_rng():
                torch.manual_seed(0)
                for indices in self.batches:
                    loss, _ = policy.forward(preprocessor(collate(self.mixture.__getitems__(indices))))
                    total += float(loss) * len(indices)
        finally:
            for m, training in modes:
                m.training = training
        return total / self.samples
