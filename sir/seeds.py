"""Seeds with roles: every range of episode seeds sir uses, what it is for, and who may look at it.

Episode i of an evaluation or a recording starts from seed ``start + i`` (sir's episodes are
worker-independent, so the same seed is the same initial state for every model). A number
is only as good as the separation of these roles: what chose a model or a setting cannot
also judge it.

| range          | role                                                                          |
| -------------- | ----------------------------------------------------------------------------- |
| ``DEMOS``      | scripted demonstrations (``sir.data.collect``)                                |
| ``CORRECTIONS``| DAgger deployments (``sir.dagger.loop``: round k of experiment seed s)        |
| ``CHOOSING``   | the evaluations during training that pick best_model's candidates             |
| ``VALIDATION`` | recipes, levers and settings chosen by hand (sir.results' final scores until  |
|                | December 2026: about 35 models were scored and chosen on 200000 on)           |
| ``CONFIRMING`` | best_model's candidates evaluated again when training ends                    |
| ``TEST``       | the numbers sir publishes: measured once, after every choice                  |
"""

from __future__ import annotations

from typing import NamedTuple


class SeedRange(NamedTuple):
    start: int
    size: int
    role: str

    def holds(self, seed: int, episodes: int = 1) -> bool:
        """Whether episodes ``seed`` .. ``seed + episodes - 1`` all lie in this range."""
        return self.start <= seed and seed + episodes <= self.start + self.size


DEMOS = SeedRange(0, 50_000, "demos")
CORRECTIONS = SeedRange(50_000, 50_000, "DAgger deployments")
CHOOSING = SeedRange(100_000, 100_000, "choosing best_model's candidates during training")
VALIDATION = SeedRange(200_000, 100_000, "validation: recipes, levers and settings chosen by hand")
CONFIRMING = SeedRange(300_000, 100_000, "confirming best_model's candidates")
TEST = SeedRange(1_000_000, 1_000_000, "test: the published numbers")
ROLES = (DEMOS, CORRECTIONS, CHOOSING, VALIDATION, CONFIRMING, TEST)


def overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Whether two runs of seeds, each (first seed, episodes), share one."""
    return a[0] < b[0] + b[1] and b[0] < a[0] + a[1]


def role_of(seed: int) -> str:
    """The role of the range ``seed`` lies in ("no role" outside them)."""
    return next((r.role for r in ROLES if r.holds(seed)), "no role")
