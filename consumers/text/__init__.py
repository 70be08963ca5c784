"""Text cues: stream titles, speech transcripts and on-screen text as a prior over the catalog."""
