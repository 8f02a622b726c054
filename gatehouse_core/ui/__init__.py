"""Streamlit helpers for the console: cached resources, the session, the role guard,
navigation, the sidebar, formatting and forms.

The only place in gatehouse_core that imports streamlit; nothing outside `ui/` imports it,
so a worker that uses gatehouse_core never loads streamlit.
"""
