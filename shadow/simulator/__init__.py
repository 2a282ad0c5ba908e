"""Simulated OpenAI-compatible upstreams for the demo, the tests and the benchmarks."""
