"""The services, each over any ``Bus``: the ingest worker, the inference consumer, the gallery and
transcript followers, replay into a bus, the embedded single-process pipeline and the demo."""
