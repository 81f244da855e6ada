"""Part 5: choosing episodes per dataset."""

import json

import numpy as np
import pytest

from sir.data import make_mixture
from sir.data.mixture.config import DataConfig
from sir.data.mixture.episodes import parse_episode_spec, select_episodes
from sir.errors import UserError

IDS = ["lift_demos", "lift_dagger"]


def test_a_spec_string_selects_per_dataset_and_bare_items_continue_the_previous_one():
    spec = parse_episode_spec("lift_demos=0:3, 7 ,lift_dagger=all", IDS)
    assert select_episodes(spec["lift_demos"], 10, "lift_demos").tolist() == [0, 1, 2, 7]
    assert select_episodes(spec["lift_dagger"], 4, "lift_dagger").tolist() == [0, 1, 2, 3]


def test_a_single_dataset_needs_no_name():
    spec = parse_episode_spec("2:", ["only"])
    assert select_episodes(spec["only"], 5, "only").tolist() == [2, 3, 4]


def test_datasets_not_named_keep_all_episodes():
    spec = parse_episode_spec("lift_demos=1", IDS)
    assert select_episodes(spec.get("lift_dagger"), 3, "lift_dagger").tolist() == [0, 1, 2]


def test_yaml_file_keeps_unquoted_ranges_as_ranges(tmp_path):
    # YAML 1.1 would read 0:25 as the base-60 number 25.
    path = tmp_path / "episodes.yaml"
    path.write_text("lift_demos: 0:25\nlift_dagger: [1, '3:5']\n")
    spec = parse_episode_spec(str(path), IDS)
    assert select_episodes(spec["lift_demos"], 30, "lift_demos").tolist() == list(range(25))
    assert select_episodes(spec["lift_dagger"], 6, "lift_dagger").tolist() == [1, 3, 4]


def test_json_file_and_dict(tmp_path):
    path = tmp_path / "episodes.json"
    path.write_text(json.dumps({"lift_demos": [0, 2], "lift_dagger": None}))
    spec = parse_episode_spec(path, IDS)
    assert spec == {"lift_demos": [0, 2], "lift_dagger": None}
    assert parse_episode_spec({"lift_demos": "1:3"}, IDS) == {"lift_demos": ["1:3"]}


@pytest.mark.parametrize(
    "text, words",
    [
        ("other=0:3", "not among --repo-ids"),
        ("lift_demos=0:99", "which has 10"),
        ("lift_demos=12", "which has 10"),
        ("lift_demos=abc", "cannot read 'abc'"),
        ("lift_demos=3:3", "selects no episodes of 'lift_demos'"),
        ("0:3", "does not say which dataset"),
    ],
)
def test_bad_selections_are_one_sentence_errors(text, words):
    with pytest.raises(UserError, match=words):
        spec = parse_episode_spec(text, IDS)
        select_episodes(spec.get("lift_demos"), 10, "lift_demos")


def test_the_mixture_trains_on_the_selected_episodes_only(data_root, data_demos, data_demos_b):
    mix = make_mixture(DataConfig(repo_ids=[data_demos, data_demos_b], root=data_root,
                                  episodes=f"{data_demos}=1:3,{data_demos_b}=2"), verbose=False)
    assert [i.used_episodes for i in mix.infos] == [[1, 2], [2]]
    assert [i.frames for i in mix.infos] == [25 + 30, 12]
    assert mix.num_episodes == 3 and len(mix) == 67
    episodes = {int(mix[i]["episode_index"]) for i in range(len(mix))}
    assert episodes == {1, 2, 5 + 2}  # the second dataset's episodes follow the first's five


def test_selection_changes_the_statistics(data_root, data_demos):
    full = make_mixture(DataConfig(repo_ids=data_demos, root=data_root), verbose=False)
    part = make_mixture(DataConfig(repo_ids=data_demos, root=data_root, episodes="4"), verbose=False)
    assert part.stats["action"]["count"][0] == 18
    assert not np.allclose(full.stats["action"]["mean"], part.stats["action"]["mean"])
