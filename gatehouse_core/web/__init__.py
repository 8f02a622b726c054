"""GateHouse's own HTTP routes beside the Streamlit console (served by `st.App` in app.py).

Starlette only, no streamlit: `headers.py` (security headers on every response),
`health.py` (`/healthz`, `/readyz`), `signin.py` (the session cookie's hand-off and sign-out).
app.py wires them to the console's shared engine; the HTTP API mounts beside them at /api.
"""
