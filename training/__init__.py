"""Offline training: synthetic data, Tianchi reader, detector and embedder, export, evaluation."""
