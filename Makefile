# sir — common runs. Variables can be overridden: `make train POLICY=diffusion STEPS=2000`.
SHELL := /bin/bash

# Where the virtual environment lives. CI points this at a shared place (~/.cache/sir/venv)
# so fresh clones do not each install the 9 GB stack again.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.sir-installed

ROOT ?= data
ENV ?= Lift
EPISODES ?= 50
REPO_ID ?= lift_demos
REPO_IDS ?= $(REPO_ID)
POLICY ?= act
PRESET ?= cpu
STEPS ?= 600
EVAL_FREQ ?= 200
EVAL_EPISODES ?= 20
BATCH_SIZE ?= 32
CHECKPOINT_DIR ?= checkpoints
CHECKPOINT ?= $(CHECKPOINT_DIR)/$(POLICY)_$(subst /,_,$(subst $(comma),_,$(REPO_IDS)))/best_model
PYTEST_ARGS ?=
TRAIN_ARGS ?=
EVAL_ARGS ?=
comma := ,

.PHONY: install test test-quick demo data train eval results lerobot-beside bc-vs-dagger lint clean distclean

# Re-run the install when the lock or pyproject changes, or when this checkout moved
# (the editable install points at the checkout's path).
ifneq ($(shell cat $(STAMP) 2>/dev/null),$(CURDIR))
$(STAMP): FORCE
endif
.PHONY: FORCE
FORCE:

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@bash scripts/system_deps.sh
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@echo $(CURDIR) > $(STAMP)

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

test-quick: install
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

data: install
	$(PY) -m sir.data.collect --env $(ENV) --episodes $(EPISODES) --root $(ROOT) --repo-id $(REPO_ID) --skip-existing

train: install
	$(PY) -m sir.training.train_policy --repo-ids $(REPO_IDS) --root $(ROOT) --policy $(POLICY) \
		--preset $(PRESET) --training-steps $(STEPS) --eval-freq $(EVAL_FREQ) \
		--eval-episodes $(EVAL_EPISODES) --batch-size $(BATCH_SIZE) --checkpoint-dir $(CHECKPOINT_DIR) $(TRAIN_ARGS)

eval: install
	$(PY) -m sir.eval.evaluate --checkpoint $(CHECKPOINT) --episodes $(EVAL_EPISODES) $(EVAL_ARGS)

# The walking skeleton end to end: 50 scripted Lift demos, a small ACT, evaluation in the
# loop, the best model evaluated on 50 episodes with a video.
demo: install
	$(MAKE) --no-print-directory data ENV=Lift REPO_ID=lift_demos EPISODES=50
	$(MAKE) --no-print-directory train REPO_IDS=lift_demos POLICY=act PRESET=cpu TRAIN_ARGS="--save-video --overwrite"
	$(MAKE) --no-print-directory eval REPO_IDS=lift_demos POLICY=act EVAL_EPISODES=50 EVAL_ARGS="--save-video"

# The results table (docs/results.md): 200 scripted demos per task, each task's recipe
# (sir/results/recipes/) trained with 3 training seeds, each best model on 100 test-range episodes
# (sir/seeds.py). Resumable, seed by seed: run it again
# after a stop and done tasks are skipped. TASKS=Lift,Stack runs some of them. One torch
# thread: on 2 shared cores it trained 2.5x faster (4.7 vs 1.9 steps/s) than two beside a recording.
TASKS ?= Lift,PickPlaceCan,NutAssemblySquare,Stack
results: install
	OMP_NUM_THREADS=1 $(PY) -m sir.results.run --tasks $(TASKS)

# lerobot-train beside sir: PickPlaceCan's 200 demos (recorded by make results), the recipe's
# policy configuration and batch; each trainer's schedule sized to the steps it makes in
# MINUTES of training (its rate probed first), both trained to the end and timed over the whole;
# sir's best_model and lerobot-train's last checkpoint scored by sir.eval.evaluate on the same
# 100 test-range episodes.
MINUTES ?= 60
lerobot-beside: install
	OMP_NUM_THREADS=1 $(PY) benchmarks/lerobot_train_beside.py --task PickPlaceCan --minutes $(MINUTES)

# BC on more demos against BC on fewer demos plus DAgger rounds at an equal number of expert
# labels (docs/dagger.md), under issue 33's protocol: round 1 recorded once per seed from the
# shared round-0 model for every --dagger-mode, later rounds each mode's own; every arm the
# same STEPS at a cosine schedule; the last round's models scored by the mean of their last
# LAST_K checkpoints, EVAL_FREQ steps apart, the earlier rounds' by their last EARLIER_LAST_K,
# on the same EVAL_EPISODES test episodes (seeds 1000000 on, where nothing is chosen: each
# round deploys its final_model). The finished arms' rows go
# to docs/dagger_experiment/ after every arm (commit them): a stopped run goes on from them,
# on this machine or a fresh clone, so it can run in pieces (SEEDS=0,1 then SEEDS=0,1,2,3 ...).
# The rows of the protocol before issue 33 are in docs/dagger_experiment/earlier/.
# Any setting can be given on the command line.
SEEDS ?= 0,1,2,3,4,5
SMALL_DEMOS ?= 10
POOL_DEMOS ?= 40
ROUNDS ?= 3
EPISODES_PER_ROUND ?= 20
LABEL_BUDGET ?= 500
MAX_STEPS ?= 300
LAST_K ?= 3
EARLIER_LAST_K ?= 1
LR_SCHEDULE ?= cosine
RESULTS_DIR ?= docs/dagger_experiment
# The scripted corrector's own rule (sir.dagger.record's defaults: a short stall, a drop or a
# sustained deviation; hand-back at the sub-goal or on agreement).
RECORD_ARGS ?=
MODES ?= successful-corrections,hg-dagger,iwr,sirius
bc-vs-dagger: ENV = PickPlaceCan
bc-vs-dagger: STEPS = 2000
bc-vs-dagger: EVAL_FREQ = 100
bc-vs-dagger: EVAL_EPISODES = 40
bc-vs-dagger: install
	OMP_NUM_THREADS=1 $(PY) -m sir.dagger.experiment --env $(ENV) --small-demos $(SMALL_DEMOS) \
		--pool-demos $(POOL_DEMOS) --rounds $(ROUNDS) --seeds $(SEEDS) --episodes-per-round $(EPISODES_PER_ROUND) \
		--label-budget $(LABEL_BUDGET) --max-steps $(MAX_STEPS) --policy $(POLICY) --preset $(PRESET) \
		--training-steps $(STEPS) --lr-schedule $(LR_SCHEDULE) --eval-freq $(EVAL_FREQ) --last-k $(LAST_K) \
		--earlier-last-k $(EARLIER_LAST_K) --eval-episodes $(EVAL_EPISODES) --batch-size $(BATCH_SIZE) --modes $(MODES) --results $(RESULTS_DIR) \
		--train-args "$(TRAIN_ARGS)" --record-args "$(RECORD_ARGS)"
	@# docs/dagger.md's figures are the committed rows': rewritten from them (only for the committed folder).
	@if [ "$(RESULTS_DIR)" = docs/dagger_experiment ]; then $(PY) -m sir.dagger.report; fi

lint: install
	$(PY) -m ruff check sir tests benchmarks

# Removes caches and build leftovers only; data/, checkpoints/ and the venv are kept.
clean:
	rm -rf .pytest_cache .ruff_cache *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
