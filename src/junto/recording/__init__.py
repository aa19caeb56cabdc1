"""Per-speaker recording: packet journals written from the SFU taps, remuxed into WebM."""
