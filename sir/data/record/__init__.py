"""Writing datasets: the episode runner and recording loop (``runner``), lerobot's writer in
a temporary folder (``writer``) with its commit record (``journal``), human operators as
actors (``teleop``) and small synthetic datasets for tests and benchmarks (``synthetic``)."""
