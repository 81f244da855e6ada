"""Reading datasets for training: the ``Mixture`` of one or more LeRobot datasets
(``dataset``) and how it is built from a ``DataConfig`` (``build``), which episodes
(``episodes``), whether they fit together (``compat``), which frames of DAgger datasets
and how often (``weights``), normalization statistics (``stats``), how samples are drawn
(``sampling``) and the settings that choose all this (``config``)."""

from sir.data.mixture.build import make_mixture, make_split_mixtures
from sir.data.mixture.dataset import DatasetInfo, Mixture

__all__ = ["DatasetInfo", "Mixture", "make_mixture", "make_split_mixtures"]
