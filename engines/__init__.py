"""Model runtimes behind one Protocol per role, pre/post-processing, batching, the gallery index."""
