"""How training samples are drawn from a mixture.

By default every used frame is equally likely (a plain shuffle). ``weights`` set the share
of samples drawn from each dataset (normalized, as in the cotraining guide: ``[1, 2]``
draws two thirds of the samples from the second dataset); ``balance_datasets`` gives every
dataset the same share; ``balance_episodes`` makes every trajectory equally likely (within
each dataset's share when shares are set, over the whole mixture otherwise). The pooled
weights of ``--dagger-mode iwr`` and ``sirius`` (``sir.data.mixture.weights``) set every
sample's probability over the whole mixture instead: dataset shares cannot be set beside
them, and ``balance_episodes`` then balances episodes within each class of sample.

The sampler draws with replacement, one pass being as many samples as the mixture has
frames; each pass draws afresh from a generator seeded by ``(seed, pass)``, so a run is
reproducible and passes differ. The plain shuffle is a permutation seeded the same way.
Neither touches torch's global RNG, so a pass can be drawn again from its number alone:
``BatchStream`` uses that to continue a resumed run in the middle of a pass.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from sir.data.store.batch import collate
from sir.errors import UserError


def parse_weights(weights: str | Sequence[float] | None, num_datasets: int) -> np.ndarray | None:
    if weights is None:
        return None
    if isinstance(weights, str):
        parts = [w.strip() for w in weights.split(",") if w.strip()]
        try:
            values = [float(w) for w in parts]
        except ValueError:
            raise UserError(f"--dataset-weights must be numbers separated by commas, not {weights!r}.") from None
    else:
        values = [float(w) for w in weights]
    if len(values) != num_datasets:
        raise UserError(
            f"dataset_weights length must match repo_ids length: --dataset-weights gives {len(values)} "
            f"weight{'s' if len(values) != 1 else ''} for {num_datasets} "
            f"dataset{'s' if num_datasets != 1 else ''} in --repo-ids."
        )
    if any(not math.isfinite(w) or w < 0 for w in values) or sum(values) <= 0:
        raise UserError(f"--dataset-weights must be non-negative numbers, not all zero (got {values}).")
    return np.asarray(values, dtype=np.float64)


def check_share_options(weights: np.ndarray | None, balance_datasets: bool) -> None:
    if weights is not None and balance_datasets:
        raise UserError("--dataset-weights and --balance-datasets both set the datasets' shares; give only one.")


def dataset_shares(
    frames: Sequence[int],
    episodes: Sequence[int],
    weights: np.ndarray | None = None,
    balance_datasets: bool = False,
    balance_episodes: bool = False,
) -> np.ndarray:
    """The share of samples each dataset gets."""
    check_share_options(weights, balance_datasets)
    if weights is not None:
        raw = weights
    elif balance_datasets:
        raw = np.ones(len(frames))
    elif balance_episodes:
        raw = np.asarray(episodes, dtype=np.float64)
    else:
        raw = np.asarray(frames, dtype=np.float64)
    return np.asarray(raw, dtype=np.float64) / float(np.sum(raw))


class _PassSampler(torch.utils.data.Sampler[int]):
    """``num_samples`` indices a pass, pass ``p`` drawn from ``(seed, p)`` alone (never the
    global RNG), so a resumed run can draw any pass again."""

    def __init__(self, num_samples: int, seed: int = 0):
        self.num_samples = int(num_samples)
        self.seed = seed
        self._passes = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw pass ``epoch`` next (accelerate's DataLoaderShard calls this before each pass)."""
        self._passes = int(epoch)

    def _next_pass_rng(self) -> np.random.Generator:
        rng = np.random.default_rng([self.seed, self._passes])
        self._passes += 1
        return rng

    def __len__(self) -> int:
        return self.num_samples


class MixtureSampler(_PassSampler):
    """Draws sample indices bucket by bucket: a bucket is a contiguous run of sample indices
    (a dataset, or an episode), chosen with probability ``probs``, then a uniform index in it."""

    def __init__(self, starts: np.ndarray, sizes: np.ndarray, probs: np.ndarray, num_samples: int, seed: int = 0):
        super().__init__(num_samples, seed)
        self.starts = np.asarray(starts, dtype=np.int64)
        self.sizes = np.asarray(sizes, dtype=np.int64)
        probs = np.asarray(probs, dtype=np.float64)
        self.probs = probs / probs.sum()

    def __iter__(self) -> Iterator[int]:
        rng = self._next_pass_rng()
        bucket = rng.choice(len(self.probs), size=self.num_samples, p=self.probs)
        offsets = (rng.random(self.num_samples) * self.sizes[bucket]).astype(np.int64)
        yield from (self.starts[bucket] + offsets).tolist()

    def probabilities(self) -> np.ndarray:
        """The probability of drawing each sample index (buckets cover them all, in order)."""
        order = np.argsort(self.starts, kind="stable")
        return np.repeat(self.probs[order] / self.sizes[order], self.sizes[order])


class ShuffleSampler(_PassSampler):
    """Every sample index once per pass, in an order seeded by ``(seed, pass)``: torch's
    shuffle, but drawn again from the pass number alone rather than from the global RNG."""

    def __iter__(self) -> Iterator[int]:
        yield from self._next_pass_rng().permutation(self.num_samples).tolist()


def make_sampler(
    dataset_starts: Sequence[int],
    dataset_sizes: Sequence[int],
    episode_runs: Sequence[tuple[np.ndarray, np.ndarray]],
    shares: np.ndarray,
    balance_episodes: bool,
    uniform: bool,
    seed: int,
    probabilities: np.ndarray | None = None,
) -> MixtureSampler | None:
    """None (shuffle) for uniform sampling over frames, else the sampler for ``shares``.

    ``episode_runs`` gives, per dataset, the (starts, sizes) of its episodes' runs of
    sample indices; ``probabilities``, when given, is every sample's own probability (a
    ``--dagger-mode``'s pooled weights), which then sets the shares alone.
    """
    total = int(sum(dataset_sizes))
    if probabilities is not None:
        return MixtureSampler(np.arange(total), np.ones(total, dtype=np.int64), probabilities, total, seed)
    if uniform and not balance_episodes:
        return None
    if balance_episodes:
        starts = np.concatenate([s for s, _ in episode_runs])
        sizes = np.concatenate([n for _, n in episode_runs])
        probs = np.concatenate([np.full(len(s), share / len(s))
                                for (s, _), share in zip(episode_runs, shares, strict=True)])
    else:
        starts, sizes, probs = np.asarray(dataset_starts), np.asarray(dataset_sizes), shares
    return MixtureSampler(starts, sizes, probs, total, seed)


def make_dataloader(
    mixture,
    batch_size: int,
    *,
    num_workers: int = 0,
    pin_memory: bool = False,
    drop_last: bool | None = None,
    seed: int = 0,
) -> torch.utils.data.DataLoader:
    """The trainer's loader: the mixture's sampler, or a shuffle seeded by ``seed``.

    ``drop_last`` defaults to dropping a short last batch only when the mixture holds at
    least one full batch (else a pass would yield nothing); ``pin_memory`` is for CUDA.
    A mixture's batches are gathered whole (``Mixture.__getitems__``) and passed on by
    ``collate`` as they are; a dataset of single samples is collated by torch's default.
    """
    sampler = mixture.take_sampler()
    if sampler is None:
        sampler = ShuffleSampler(len(mixture), seed)
    return torch.utils.data.DataLoader(
        mixture,
        batch_size=batch_size,
        sampler=sampler,
        drop_last=len(mixture) >= batch_size if drop_last is None else drop_last,
        num_workers=num_workers,
        pin_memory=pin_memory,
        # The mixture gathers a batch at once (Mixture.__getitems__): collated already.
        collate_fn=collate,
        # A pass is one mixture's worth of samples, often a few hundred steps: keep the
        # workers rather than start new processes for each pass.
        persistent_workers=num_workers > 0,
        # Its own generator: without one every pass would draw the workers' base seed from
        # torch's global RNG, which dropout and ACT's VAE draw from too, so a resumed run
        # (which starts its loader mid-pass) would see other random numbers than the original.
        generator=torch.Generator().manual_seed(seed),
    )


def set_pass(loader, epoch: int) -> None:
    """Make ``loader``'s next pass be pass number ``epoch``."""
    if hasattr(loader, "set_epoch"):  # accelerate's DataLoaderShard: its own counter and the sampler's
        loader.set_epoch(epoch)
        return
    sampler = loader.batch_sampler.sampler if loader.batch_sampler is not None else loader.sampler
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)


class BatchStream:
    """Batches pass after pass without end (lerobot's ``cycle``), knowing its place: the pass
    and the number of its batches handed out. Started at ``(epoch, batch)``, the first pass
    is drawn again from its number and its first ``batch`` batches are skipped by index
    (accelerate's ``skip_first_batches``), without loading them."""

    def __init__(self, loader, epoch: int = 0, batch: int = 0):
        self.loader = loader
        self.epoch, self.batch = int(epoch), int(batch)
        self._iterator: Iterator | None = None

    def position(self) -> dict[str, int]:
        """Where the next batch comes from: ``{"pass": p, "batch": b}`` (b batches of pass p consumed)."""
        return {"pass": self.epoch, "batch": self.batch}

    def __iter__(self) -> BatchStream:
        return self

    def __next__(self):
        for _ in range(2):  # the rest of a pass may be empty; a whole new pass may not
            if self._iterator is None:
                self._iterator = iter(self._pass_loader())
            try:
                item = next(self._iterator)
            except StopIteration:
                self._iterator = None
                self.epoch, self.batch = self.epoch + 1, 0
                continue
            self.batch += 1
            return item
        raise RuntimeError("the training DataLoader yielded no batch in a whole pass")

    def _pass_loader(self):
        set_pass(self.loader, self.epoch)
        if self.batch == 0:
            return self.loader
        from accelerate.data_loader import skip_first_batches

        # The new loader shares the sampler (and its pass number) and the generator.
        return skip_first_batches(self.loader, self.batch)
