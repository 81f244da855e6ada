"""The trainer: the train_policy CLI, its loop, checkpoints and logging."""
