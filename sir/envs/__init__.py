"""Robosuite envs described by an EnvSpec, and their observations as LeRobot features."""
