"""Streamlit readiness dashboard; talks to the service over HTTP."""
