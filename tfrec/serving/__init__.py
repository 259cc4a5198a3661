"""Serving: the local TF-Serving-API server, the client, and request helpers."""
