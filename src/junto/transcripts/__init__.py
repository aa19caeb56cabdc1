"""The final transcript of a conversation: built after it ends, corrected by its hosts.

- `jobs`: the worker jobs `transcript.track` (one recording piece → words with timings) and
  `transcript.build` (all pieces → speaker segments in time order).
- `merge`: the pure merge of per-speaker words into segments.
- `store`: reading the transcript for pages and the API.
- `edits`: hosts' corrections of a segment's text or speaker, with their history.
- `vtt`: the transcript's WebVTT file (rendered by junto.speech.webvtt).
"""
