"""Datasets, in two halves that share only the label schema (``labels``), path resolution
(``resolve``) and the video decoder choice (``video``):

- ``record/``: writing datasets (the episode runner and recording loop, lerobot's writer
  with its journal, human operators, synthetic data); its commands are ``sir.data.collect``
  and ``sir.data.import_hdf5``.
- ``mixture/`` and ``store/``: reading them for training (the mixture: episode selection,
  compatibility, DAgger weights, statistics, sampling; the in-memory frame store, the
  frame cache and batch gathering); ``sir.data.verify`` checks a mixture.
"""

from sir.data.mixture import DatasetInfo, Mixture, make_mixture, make_split_mixtures
from sir.data.mixture.sampling import make_dataloader
from sir.data.resolve import parse_repo_ids

__all__ = ["DatasetInfo", "Mixture", "make_dataloader", "make_mixture", "make_split_mixtures", "parse_repo_ids"]
