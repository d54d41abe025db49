"""Entry script: builds the navigation and runs the chosen page.

Run with ``streamlit run dashboard/app.py``.
"""

import os
import sys
from pathlib import Path

# Keep TensorFlow's C++ start-up chatter out of the server log.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# `streamlit run dashboard/app.py` puts dashboard/ on sys.path; core lives one level up.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import streamlit as st  # noqa: E402

from dashboard import i18n, state  # noqa: E402
from dashboard.i18n import _  # noqa: E402

# Not "pages/": Streamlit would also list that folder as legacy auto-discovered pages.
VIEWS = Path(__file__).resolve().parent / "views"

i18n.follow_url()  # first: every string below is in the reader's language
st.set_page_config(page_title=_("Vision model operations"), page_icon=":material/visibility:",
                   layout="wide")
state.keep_keras_state_between_runs()
navigation = st.navigation([
    st.Page(VIEWS / "predict.py", title=_("Predict"), icon=":material/photo_camera:",
            default=True),
    st.Page(VIEWS / "versions.py", title=_("Versions"), icon=":material/inventory_2:"),
    st.Page(VIEWS / "drift.py", title=_("Drift"), icon=":material/monitoring:"),
    st.Page(VIEWS / "review_queue.py", title=_("Review queue"), icon=":material/label:"),
    st.Page(VIEWS / "traffic.py", title=_("Traffic"), icon=":material/swap_calls:"),
    st.Page(VIEWS / "alerts.py", title=_("Alerts"), icon=":material/notifications:"),
    st.Page(VIEWS / "retrain.py", title=_("Retrain"), icon=":material/model_training:"),
    st.Page(VIEWS / "governance.py", title=_("Governance"), icon=":material/gavel:"),
])
state.follow_model_in_url()
i18n.selector()
state.model_selector()
state.sign_in_panel()
navigation.run()
