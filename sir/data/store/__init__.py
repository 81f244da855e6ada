"""One dataset's frames served fast: numbers in memory with lerobot's window rule
(``frames``), camera frames decoded once and kept as uint8 (``cache``), and whole batches
gathered at once (``batch``)."""
