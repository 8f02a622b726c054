"""GateHouse console: `streamlit run app.py`.

One file, two roles. `streamlit run` finds the module-level `app = st.App(...)` and serves it
under uvicorn: the console plus GateHouse's own routes (session cookie hand-off and sign-out,
/healthz, /readyz; the HTTP API mounts beside them at /api), security headers on every
response, and a lifespan that builds the shared engine, registry and gateway once and closes
them (flushing audit rows) on shutdown. Each browser session then runs this same file as its
script, where `st.runtime.exists()` is true: the page config, the door (first-admin setup or
sign-in), navigation from the signed-in role, the sidebar and the error edge around the page.
AppTest runs the script part the same way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import streamlit as st

if st.runtime.exists():
    from gatehouse_core.ui import errors, nav, session, sidebar, signin
    from gatehouse_core.ui.assets import PAGE_ICON

    st.set_page_config(page_title="GateHouse", page_icon=PAGE_ICON, layout="wide")

    user = signin.gate()  # renders setup or sign-in when nobody is signed in
    if user is not None:
        page = nav.navigation(user.role)
        with sidebar.around(user):  # provider health drawn again after the page ran
            with st.sidebar:
                session.sign_out_everywhere_button()
                session.cookie_script()  # before the page: a page may st.stop()
            with errors.shown():
                page.run()
else:
    import anyio
    from starlette.middleware import Middleware

    from gatehouse_core.ui import nav, state
    from gatehouse_core.web.api import LazyApi, api_routes
    from gatehouse_core.web.headers import SecurityHeaders
    from gatehouse_core.web.health import health_routes
    from gatehouse_core.web.housekeeping import Housekeeping
    from gatehouse_core.web.signin import signin_routes

    nav.disable_legacy_pages_folder()
    api = LazyApi(state.registry, state.gateway)

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(state.warm_up)
        chores = Housekeeping(state.engine).start()
        try:
            yield
        finally:
            chores.stop()
            await anyio.to_thread.run_sync(api.close)
            await anyio.to_thread.run_sync(state.release_all)

    app = st.App(
        "app.py",
        routes=[
            *signin_routes(state.sessions),
            *health_routes(state.engine),
            *api_routes(api),
        ],
        middleware=[Middleware(SecurityHeaders)],
        lifespan=lifespan,
    )
