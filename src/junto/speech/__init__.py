"""Speech: live captions (VAD + Whisper in a worker process) and the models they use.

`models` resolves, lists and pulls Whisper models; `vad` finds utterances in a stream;
`caption_worker` is the process that decodes, segments and transcribes speakers' audio;
`caption_process` is the node's handle on it; `live` turns its results into stored, delivered
captions; `webvtt` renders captions as WebVTT. `offline` is the final transcript's pass.
"""
