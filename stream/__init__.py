"""Video in and out of bytes: sources, sampling, the frame packet wire format, decode.

No Kafka and no models here; `engines` and `consumers` build on this package.
"""
