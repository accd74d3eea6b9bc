"""Benchmarks: threadloom side by side with LangGraph (``make bench``)."""
