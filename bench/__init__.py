"""Benchmarks. Run them as scripts from the repository root, e.g. `.venv/bin/python bench/stream_load.py --suite`."""
