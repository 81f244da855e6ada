"""sir: train LeRobot policies on LeRobot datasets, evaluate in Robosuite, close the DAgger loop."""

__version__ = "0.1.0"
