"""Live audio and video: the media backend interface and its implementations."""
