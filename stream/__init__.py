"""Video in and out of bytes: sources, sampling, the frame packet wire format, decode.

No Kafka and no models here; `engines` and `consumers` build on this package.

Modules: ``source`` (PyAV inputs with timeouts, reconnect, stall detection), ``frames``
(``FrameReader`` / ``iter_frame_packets``: keyframes or fps-sampled JPEG as ``FramePacket``),
``sampling`` (``SamplingSpec``, max-rate limiter), ``decode`` (``PacketDecoder``), ``packet`` (wire
format), ``backoff``, ``pacing``, ``clock``, ``errors`` and ``encode`` (test and tool helpers).
Importing this package loads nothing heavy; PyAV loads with the modules that need it.
"""
