"""Offline evaluation and tuning commands (no ray, no fastapi): `python -m serve_app.eval.<name>`."""
