"""Datasets: resolution, DAgger filtering, the training mixture, recording, verification."""

from sir.data.mixture import DatasetInfo, Mixture, make_mixture
from sir.data.resolve import parse_repo_ids
from sir.data.sampling import make_dataloader

__all__ = ["DatasetInfo", "Mixture", "make_dataloader", "make_mixture", "parse_repo_ids"]
