"""Pure speech-pipeline code: no ray, no fastapi. Everything here is testable in milliseconds."""
