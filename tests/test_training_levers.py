"""The trainer's optimization levers: --ema-decay (a weight average evaluated and saved as
Diffusion Policy evaluates its EMA model) and --lr-schedule (lerobot's scheduler configs)."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file
from test_resume import assert_identical, interrupted_and_resumed, tiny_config

from sir.errors import UserError
from sir.training import TrainConfig, train
from sir.training.config import check
from sir.training.ema import EMA_STATE_FILENAME, WeightAverage


def dp_decay(optimization_step: int, power: float, max_value: float) -> float:
    # Diffusion Policy's EMAModel.get_decay, written out from its ema_model.py (update_after_step 0,
    # inv_gamma 1, min_value 0), to check sir's against.
    step = max(0, optimization_step - 0 - 1)
    value = 1 - (1 + step / 1.0) ** -power
    if step <= 0:
        return 0.0
    return max(0.0, min(value, max_value))


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(3, 4)
        self.norm = torch.nn.BatchNorm1d(4)
        self.frozen = torch.nn.Parameter(torch.randn(2), requires_grad=False)


def test_weight_average_is_a_hand_computed_ema_with_diffusion_policys_warm_up():
    torch.manual_seed(0)
    net = Net()
    average = WeightAverage(net, max_decay=0.6, power=0.75)
    expected = {k: v.clone() for k, v in net.state_dict().items()}
    decays = []
    for k in range(5):
        with torch.no_grad():  # what an optimizer step and a forward pass would change
            for p in net.parameters():
                p.add_(torch.randn_like(p))
            net.norm.running_mean.add_(1.0)
            net.norm.num_batches_tracked.add_(1)
        decays.append(average.update(net))
        d = dp_decay(k, 0.75, 0.6)
        for name, value in net.state_dict().items():
            averaged = name in ("linear.weight", "linear.bias")  # trainable, not BatchNorm's
            expected[name] = d * expected[name] + (1 - d) * value if averaged else value.clone()
    # 0, 0, then the warm-up 1 - 2^-0.75 = 0.41, 1 - 3^-0.75 = 0.56, capped at 0.6.
    assert decays == pytest.approx([0.0, 0.0, 1 - 2 ** -0.75, 1 - 3 ** -0.75, 0.6])
    got = average.model.state_dict()
    for name, value in expected.items():
        assert torch.allclose(got[name], value, atol=1e-6), name
    assert not torch.equal(got["linear.weight"], net.linear.weight)
    assert not average.model.training and not any(p.requires_grad for p in average.model.parameters())


def test_saved_models_hold_the_average_of_the_trained_weights_each_step(data_root, data_demos, tmp_path):
    steps = 5
    config = tiny_config(data_root, [data_demos], tmp_path, training_steps=steps, save_freq=1, ema_decay=0.7)
    run = train(config).run_dir
    # checkpoint_<step> keeps the trained weights of each step: the average is rebuilt from them.
    expected = None
    for k in range(steps):
        trained = load_file(run / f"checkpoint_{k + 1}" / "model.safetensors")
        d = dp_decay(k, 0.75, 0.7)
        expected = trained if expected is None else {n: d * expected[n] + (1 - d) * v for n, v in trained.items()}
    final = load_file(run / "final_model" / "model.safetensors")
    assert final.keys() == expected.keys()
    for name in final:
        assert torch.allclose(final[name], expected[name], atol=1e-6), name
    assert not all(torch.equal(final[n], trained[n]) for n in final)
    # The average of checkpoint_5 (for --resume) is the final model's.
    saved = load_file(run / f"checkpoint_{steps}" / "training_state" / EMA_STATE_FILENAME)
    assert all(torch.equal(saved[n], final[n]) for n in final)
    info = json.loads((run / "final_model" / "sir_checkpoint.json").read_text())
    assert info["weights"]["average"]["updates"] == steps
    assert json.loads((run / "checkpoint_5" / "sir_checkpoint.json").read_text())["weights"] == "trained"


def test_resumed_run_continues_the_average_and_the_schedule_bit_for_bit(data_root, data_demos, tmp_path):
    config = tiny_config(data_root, [data_demos], tmp_path, ema_decay=0.9, lr_schedule="cosine",
                         lr_warmup_steps=3, lr=1e-3)
    expected, got, run_dir = interrupted_and_resumed(config, tmp_path)
    assert_identical(expected, got)
    state = json.loads((run_dir / "checkpoint_5" / "training_state" / "sir_run_state.json").read_text())
    assert state["ema"]["updates"] == 5


def lerobot_lrs(scheduler_cfg, lr: float, steps: int) -> list[float]:
    """The rate after each of ``steps`` optimizer steps under lerobot's own scheduler."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler = scheduler_cfg.build(optimizer, steps)
    rates = []
    for _ in range(steps):
        optimizer.step()
        scheduler.step()
        rates.append(optimizer.param_groups[0]["lr"])
    return rates


def logged_lrs(run_dir) -> list[float]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["train/lr"] for line in lines if "train/lr" in line]


def test_cosine_schedule_gives_lerobots_rate_at_every_step(data_root, data_demos, tmp_path):
    from lerobot.optim.schedulers import CosineDecayWithWarmupSchedulerConfig

    steps = 10
    config = tiny_config(data_root, [data_demos], tmp_path, training_steps=steps, save_freq=steps, lr=1e-3,
                         lr_schedule="cosine", lr_warmup_steps=3, lr_final=1e-4)
    rates = logged_lrs(train(config).run_dir)
    reference = lerobot_lrs(CosineDecayWithWarmupSchedulerConfig(num_warmup_steps=3, num_decay_steps=steps,
                                                                 peak_lr=1e-3, decay_lr=1e-4), 1e-3, steps)
    assert rates == pytest.approx(reference, rel=1e-12)
    assert rates[1] > rates[0] and rates[-1] == pytest.approx(1e-4)  # warmed up, then decayed to --lr-final

    constant = logged_lrs(train(dataclasses.replace(config, lr_schedule="preset", lr_warmup_steps=None,
                                                    lr_final=None, run_name="preset")).run_dir)
    assert constant == [1e-3] * steps  # ACT's preset has no scheduler


def test_presets_schedule_is_the_policys_own_and_constant_drops_it():
    from lerobot.policies.act.configuration_act import ACTConfig
    from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig

    from sir.training.schedule import scheduler_config

    base = TrainConfig(repo_ids=["x"])
    diffusion = DiffusionConfig()
    preset = scheduler_config(base, diffusion, 1e-4)
    assert preset.type == "diffuser" and preset.num_warmup_steps == diffusion.scheduler_warmup_steps
    assert scheduler_config(dataclasses.replace(base, lr_schedule="constant"), diffusion, 1e-4) is None
    assert scheduler_config(base, ACTConfig(), 1e-5) is None
    cosine = scheduler_config(dataclasses.replace(base, lr_schedule="cosine", training_steps=2000), ACTConfig(), 1e-5)
    assert (cosine.num_warmup_steps, cosine.num_decay_steps, cosine.decay_lr) == (200, 2000, 0.0)
    with pytest.raises(UserError, match="above the learning rate"):
        scheduler_config(dataclasses.replace(base, lr_schedule="cosine", lr_final=1e-3), ACTConfig(), 1e-5)


@pytest.mark.parametrize("settings, message", [
    ({"lr_warmup_steps": 10}, "add --lr-schedule cosine"),
    ({"lr_schedule": "cosine", "lr_warmup_steps": 100, "training_steps": 100}, "must be fewer"),
    ({"ema_decay": 1.0}, "below 1"),
    ({"select_seed": 100_005}, "reuses seeds"),
])
def test_impossible_lever_settings_are_refused_in_one_sentence(settings, message):
    with pytest.raises(UserError, match=message):
        check(TrainConfig(repo_ids=["x"], **settings))
