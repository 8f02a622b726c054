"""The console's pages and the navigation built from the signed-in role.

`PAGES` is the one list of page scripts (paths relative to `app.py`, the entrypoint); a
page appears in the navigation only when the role has its permission (auth.PERMISSIONS),
and each page script checks the same permission again at its top (ui/guard.py).

URL paths deliberately differ from the file names: Streamlit still knows the legacy
`pages/` folder convention, and until a process first runs `st.navigation` a URL equal to a
file's stem would run that file directly, without app.py (AppTest does this on every
rerun). With distinct URL paths every request goes through app.py and its sign-in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st
from streamlit.navigation.page import StreamlitPage

from ..auth import can


@dataclass(frozen=True)
class PageSpec:
    path: str  # relative to app.py
    title: str
    icon: str
    url_path: str
    section: str
    permission: str


PAGES: tuple[PageSpec, ...] = (
    # Overview comes first: it is every role's home page after sign-in.
    PageSpec(
        "pages/overview.py", "Overview", ":material/dashboard:", "home", "Spend", "dashboards"
    ),
    PageSpec("pages/costs.py", "Costs", ":material/payments:", "spend", "Spend", "dashboards"),
    PageSpec(
        "pages/requests.py", "Requests", ":material/list_alt:", "audit-log", "Spend", "dashboards"
    ),
    # Everyone reads budgets and alerts; editing is checked again per action (budgets.edit).
    PageSpec(
        "pages/budgets.py",
        "Budgets & alerts",
        ":material/savings:",
        "budgets",
        "Spend",
        "dashboards",
    ),
    PageSpec("pages/playground.py", "Playground", ":material/forum:", "chat", "Use", "playground"),
    PageSpec("pages/models.py", "Models", ":material/view_list:", "catalog", "Use", "models"),
    PageSpec(
        "pages/providers.py", "Providers", ":material/key:", "ai-providers", "Admin", "providers"
    ),
    PageSpec("pages/users.py", "Users", ":material/group:", "people", "Admin", "users"),
    PageSpec("pages/tokens.py", "API tokens", ":material/token:", "api-tokens", "Admin", "tokens"),
    PageSpec(
        "pages/history.py", "Change history", ":material/history:", "changes", "Admin", "history"
    ),
)
REQUESTED_KEY = "gh_requested_page"


def pages_for(role: str) -> dict[str, list[PageSpec]]:
    """The pages `role` may open, by section, in `PAGES` order."""
    sections: dict[str, list[PageSpec]] = {}
    for spec in PAGES:
        if can(role, spec.permission):
            sections.setdefault(spec.section, []).append(spec)
    return sections


def navigation(role: str) -> StreamlitPage:
    """Register the role's pages with `st.navigation`; the first one is the default."""
    sections = pages_for(role)
    first = next(iter(sections.values()))[0] if sections else None
    pages = {
        section: [
            st.Page(s.path, title=s.title, icon=s.icon, url_path=s.url_path, default=s is first)
            for s in specs
        ]
        for section, specs in sections.items()
    }
    current = st.navigation(pages, position="sidebar")
    _go_to_requested(current, [p for section in pages.values() for p in section])
    return current


def _go_to_requested(current: StreamlitPage, pages: list[StreamlitPage]) -> None:
    """After sign-in, open the page whose URL the user came with (a deep link or reload)."""
    requested = st.session_state.pop(REQUESTED_KEY, None)
    if not requested or current.url_path == requested:
        return
    for page in pages:
        if page.url_path == requested:
            st.switch_page(page)


def single(render: Callable[[], None], title: str, url_path: str) -> StreamlitPage:
    """A hidden one-page navigation: nothing else is reachable by URL."""
    page = st.Page(render, title=title, url_path=url_path, default=True)
    return st.navigation([page], position="hidden")


def door(render: Callable[[], None], title: str, url_path: str) -> StreamlitPage:
    """The signed-out navigation (setup, sign-in): every console URL shows the door.

    Each page's URL is registered too, all rendering the door, so a deep link or a reload
    shows the sign-in form instead of a "Page not found" modal; the URL asked for is
    remembered (remember_requested) and opened after sign-in.
    """
    first = st.Page(render, title=title, url_path=url_path, default=True)
    aliases = [
        st.Page(render, title=title, url_path=spec.url_path) for spec in PAGES if spec.url_path
    ]
    return st.navigation([first, *aliases], position="hidden")


def remember_requested(page: StreamlitPage) -> None:
    if any(page.url_path == spec.url_path for spec in PAGES):
        st.session_state[REQUESTED_KEY] = page.url_path


def disable_legacy_pages_folder() -> None:
    """Tell Streamlit, before the first session, that this app navigates with st.navigation.

    Until a process first runs `st.navigation`, Streamlit treats a `pages/` folder next to
    the entrypoint as the legacy multipage convention: the first session's first run then
    resolves its URL against the files' stems and shows a false "Page not found" for a deep
    link such as /ai-providers. `st.navigation` clears this same flag on its first call; the
    server clears it at start so the first visitor gets what everyone after them gets.
    """
    from streamlit.runtime.pages_manager import PagesManager

    PagesManager.uses_pages_directory = False
