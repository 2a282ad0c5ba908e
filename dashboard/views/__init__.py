"""The dashboard's pages (run by Streamlit's navigation, not imported)."""
