"""A self-hosted speech-to-text service speaking the Together AI / OpenAI audio API on Ray Serve."""

__version__ = "0.1.0"
