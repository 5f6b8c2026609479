"""Model adapters (faster-whisper today, pyannote next) behind small interfaces."""
