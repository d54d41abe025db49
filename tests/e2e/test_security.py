"""The live server's protections: XSRF on uploads, same-origin websockets, and upload file
names that never become paths."""

import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from core.ml.images import encode_png
from tests.conftest import fashion_test_images
from tests.streamlit_client import DashboardSession

pytestmark = pytest.mark.slow


def put(url: str, headers: dict) -> int:
    request = urllib.request.Request(url, data=b"--x--\r\n", method="PUT", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_uploads_without_the_pages_xsrf_token_are_refused(dashboard_url):
    session = DashboardSession(dashboard_url)  # a real session, with its own token
    try:
        target = f"{dashboard_url}/_stcore/upload_file/{session.session_id}/{uuid.uuid4().hex}"
        # What another site's page could make a visitor's browser send: no token...
        assert put(target, {"Content-Type": "multipart/form-data; boundary=x"}) == 403
        # ...or a token that does not match the visitor's cookie.
        other = DashboardSession(dashboard_url)
        assert put(target, {"Content-Type": "multipart/form-data; boundary=x",
                            "X-Xsrftoken": other.xsrf,
                            "Cookie": f"_streamlit_xsrf={session.xsrf}"}) == 403
        other.close()
    finally:
        session.close()


def test_websockets_from_another_origin_are_refused(dashboard_url):
    with pytest.raises(InvalidStatus, match="403"):
        with connect(dashboard_url.replace("http", "ws", 1) + "/_stcore/stream",
                     subprotocols=["streamlit"], open_timeout=30,
                     additional_headers={"Origin": "https://evil.example"}):
            pass


def test_an_upload_named_like_a_path_is_only_a_name(dashboard_url, e2e_config):
    escape = Path("/tmp") / f"escaped-{uuid.uuid4().hex}.png"
    session = DashboardSession(dashboard_url)
    try:
        page = session.upload(f"../../../../..{escape}",
                              encode_png(fashion_test_images(1)[0][0]))
    finally:
        session.close()
    assert page.find("Answered by version") and not page.errors
    assert not escape.exists()
    assert not [p for p in e2e_config.registry_dir.rglob("*") if escape.stem in p.name]
