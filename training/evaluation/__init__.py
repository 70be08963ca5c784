"""Evaluation of the served pipeline on a Tianchi-layout data set: replay, per-stream summaries,
challenge metrics and the optional cross-video refinement."""
