"""The DAgger loop: policy rollouts, corrections as labelled data, retraining."""
