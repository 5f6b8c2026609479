"""Thin Ray Serve deployments: each wires one backend or pipeline step into the graph."""
