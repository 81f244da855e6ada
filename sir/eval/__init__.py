"""Policy evaluation in Robosuite: rollouts, metrics, videos."""
