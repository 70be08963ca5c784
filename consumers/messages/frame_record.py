"""The ``frames`` topic's record: a frame packet (``stream.packet.FramePacket``) plus the seller's catalog.

Key = stream id, value = the packet's bytes (an H.264/HEVC keyframe access unit or a JPEG), headers =
the packet's stream metadata (``lt-*``, see ``schemas/frame_headers.v2.json``) and ``catalog``: the
catalog the stream's products are searched in. Every producer of frames (the ingest worker, replay
into Kafka, the embedded pipeline's readers) publishes through :func:`publish_frame`.
"""

from __future__ import annotations

from consumers.bus import HeaderList, Producer
from stream.packet import FramePacket

#: Header naming the seller's catalog (UTF-8 catalog id); absent: the whole gallery is searched.
CATALOG_HEADER = "catalog"


def frame_record(packet: FramePacket, catalog: str | None) -> tuple[bytes, bytes, HeaderList]:
    """``(key, value, headers)`` of one frame record (no ``catalog`` header when ``catalog`` is None)."""
    key, value, headers = packet.to_record()
    if catalog is not None:
        headers = [*headers, (CATALOG_HEADER, catalog.encode())]
    return key, value, headers


def publish_frame(producer: Producer, topic: str, packet: FramePacket, catalog: str | None) -> None:
    """Produce one frame record to ``topic`` (delivery is checked by the producer's next flush)."""
    key, value, headers = frame_record(packet, catalog)
    producer.produce(topic, key, value, headers)
