"""RAG sources, not wired in yet (DESIGN §5).

This package holds the pure pieces of the RAG feature as they land (so far: `chunking`).
Nothing imports it yet: `sources:` stays a located "not available" error in
amelia/features.py until the whole feature lands.
"""
