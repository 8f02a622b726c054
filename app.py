"""GateHouse console: `streamlit run app.py`.

The shell: page config, the door (first-admin setup or sign-in), navigation built from the
signed-in role, the shared sidebar, and the error edge around the page that runs.
"""

import streamlit as st

from gatehouse_core.ui import errors, nav, sidebar, signin

st.set_page_config(page_title="GateHouse", page_icon=":material/shield_lock:", layout="wide")

user = signin.gate()  # renders setup or sign-in when nobody is signed in
if user is not None:
    page = nav.navigation(user.role)
    with sidebar.around(user), errors.shown():  # provider health drawn after the page ran
        page.run()
