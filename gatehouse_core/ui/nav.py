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
    PageSpec("pages/playground.py", "Playground", ":material/forum:", "chat", "Use", "playground"),
    PageSpec("pages/models.py", "Models", ":material/view_list:", "catalog", "Use", "models"),
    PageSpec(
        "pages/providers.py", "Providers", ":material/key:", "ai-providers", "Admin", "providers"
    ),
    PageSpec(
        "pages/history.py", "Change history", ":material/history:", "changes", "Admin", "history"
    ),
)


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
    return st.navigation(pages, position="sidebar")


def single(render: Callable[[], None], title: str, url_path: str) -> StreamlitPage:
    """A hidden one-page navigation (setup, sign-in): nothing else is reachable by URL."""
    page = st.Page(render, title=title, url_path=url_path, default=True)
    return st.navigation([page], position="hidden")
