"""The running service: OpenAI-compatible proxy, shadow jobs, settings and CLI."""
