"""One module per topic's payload and headers: ``streams`` (:mod:`~consumers.messages.stream_record`),
``frames`` (:mod:`~consumers.messages.frame_record`), ``gallery`` (:mod:`~consumers.messages.gallery_record`),
``matches`` (:mod:`~consumers.messages.match_event`), ``dlq`` (:mod:`~consumers.messages.dead_letter`),
``segments`` (:mod:`~consumers.messages.segment_state`); ``transcripts`` is
:mod:`consumers.text.transcripts`. Their JSON Schemas are in ``schemas/``
(:mod:`~consumers.messages.payload_schemas`)."""
