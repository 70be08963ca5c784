"""The inference stage: model loading, gallery building, the one stage builder, the stage itself
(decode, detect, embed, search, vote) and the consumer loops that run it over a bus."""
