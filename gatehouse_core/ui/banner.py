"""The alert banner every signed-in page shows while unacknowledged cost alerts exist.

Drawn by the shared page frame (ui/sidebar.py `around`) before the page runs. It costs one
small query per rerun at most: the newest few unacknowledged alerts (`alerts.fired_at` is
indexed), cached for BANNER_TTL_SECONDS like the other cached reads; acknowledging an alert
in this process clears the cache, other processes see it within the TTL.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
from sqlalchemy import select
from streamlit.errors import StreamlitAPIException

from ..db import transaction
from ..schema import Alert
from . import flash, state
from .errors import message_for
from .format import clip
from .session import SignedIn, current

BANNER_TTL_SECONDS = 5
SHOWN = 3  # the banner names this many; it counts up to SHOWN + 1 ("3+ more")
BUDGETS_PAGE = "pages/budgets.py"  # ui/nav.py's path of the Budgets & alerts page
BUDGETS_URL = "/budgets"  # its url_path, for a frame drawn outside st.navigation


@dataclass(frozen=True)
class Pending:
    id: int
    kind: str
    text: str


@st.cache_data(ttl=BANNER_TTL_SECONDS, show_spinner=False)
def _pending(url: str) -> list[Pending]:
    """The newest unacknowledged alerts (one indexed query; `url` is the cache key)."""
    query = (
        select(Alert.id, Alert.kind, Alert.text)
        .where(Alert.acknowledged_at.is_(None))
        .order_by(Alert.fired_at.desc(), Alert.id.desc())
        .limit(SHOWN + 1)
    )
    with transaction(state.engine()) as s:
        return [Pending(int(i), k, t) for i, k, t in s.execute(query)]


def pending() -> list[Pending]:
    return _pending(state.database_url())


def forget() -> None:
    """After an acknowledgement: the next rerun asks the database again."""
    _pending.clear()


def acknowledge(ids: list[int]) -> int:
    """Acknowledge alerts as the signed-in user (admin or operator); returns how many."""
    from ..spend.alerts import Alerts

    user = current()
    if user is None or not user.can("alerts.ack"):
        role = user.role if user else "signed-out"
        flash.push("error", f"Your role ({role}) may not acknowledge cost alerts.")
        return 0
    alerts = Alerts(state.engine())
    done = 0
    try:
        for alert_id in ids:
            alerts.acknowledge(alert_id, actor=user.username)
            done += 1
    except Exception as exc:
        flash.push("error", message_for(exc))
    finally:
        forget()
    return done


def _acknowledge_shown(ids: list[int]) -> None:
    if done := acknowledge(ids):
        flash.push("success", f"Acknowledged {done} alert(s).")


def render(user: SignedIn) -> None:
    """The banner (nothing when every alert is acknowledged or the query fails)."""
    try:
        alerts = pending()
    except Exception:  # the page itself shows database problems; the banner stays quiet
        return
    if not alerts:
        return
    more = "+" if len(alerts) > SHOWN else ""
    shown = alerts[:SHOWN]
    lines = "  \n".join(f"- {clip(a.text)}" for a in shown)
    with st.container(key="alert_banner"):
        st.error(
            f"**{len(shown)}{more} unacknowledged cost alert(s)**  \n{lines}",
            icon=":material/notifications_active:",
        )
        link, ack = st.columns([3, 1], vertical_alignment="center")
        with link:
            try:
                st.page_link(BUDGETS_PAGE, label="Open Budgets & alerts", icon=":material/savings:")
            except (StreamlitAPIException, KeyError):  # no st.navigation in this run
                st.markdown(f"[Open Budgets & alerts]({BUDGETS_URL})")
        if user.can("alerts.ack"):
            ack.button(
                "Acknowledge",
                key="banner_ack",
                icon=":material/done_all:",
                on_click=_acknowledge_shown,
                args=([a.id for a in shown],),
                help="Mark these alerts seen for everyone; the banner then goes away.",
            )
