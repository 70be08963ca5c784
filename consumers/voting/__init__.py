"""Per-stream decisions: the observations a frame brings, the similarity voter and its state."""
