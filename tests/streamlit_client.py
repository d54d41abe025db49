"""A dashboard session without a browser: Streamlit's own websocket protocol, spoken directly.

Many of these fit on two cores where as many Chromium tabs would not, so the load
test measures the server, not the browsers. A session does what the Predict page's
frontend does for an upload: ask for an upload URL, PUT the file (with the XSRF
token, as the browser sends it), rerun the script with the uploader's new value, and
read the page it draws until the run ends. It does not fetch the images the page
links to (the browser would, from the media endpoint).
"""

from __future__ import annotations

import http.cookiejar
import time
import urllib.request
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ClientState_pb2 import ClientState, ContextInfo
from streamlit.proto.Common_pb2 import FileUploaderState, FileURLsRequest, UploadedFileInfo
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState
from websockets.sync.client import connect
from websockets.typing import Subprotocol

XSRF_COOKIE = "_streamlit_xsrf"
TIMEOUT_SECONDS = 120


@dataclass
class Page:
    """What one script run drew: the texts a person would read, and what went wrong."""

    texts: list[str] = field(default_factory=list)  # headings, markdown, captions, alerts
    errors: list[str] = field(default_factory=list)  # st.error bodies
    exceptions: list[str] = field(default_factory=list)  # uncaught exceptions (tracebacks)
    uploader_id: str | None = None

    def find(self, prefix: str) -> str | None:
        return next((text for text in self.texts if text.startswith(prefix)), None)


class DashboardSession:
    """One visitor's session: connect, then ``upload`` files to the Predict page."""

    def __init__(self, base_url: str):
        self.base_url = base_url.rstrip("/")
        cookies = http.cookiejar.CookieJar()
        self._http = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(cookies))
        # The health endpoint sets the XSRF cookie, as loading the page does for a browser.
        self._http.open(f"{self.base_url}/_stcore/health", timeout=TIMEOUT_SECONDS).read()
        self.xsrf = next(c.value or "" for c in cookies if c.name == XSRF_COOKIE)
        self._cookie_header = "; ".join(f"{c.name}={c.value}" for c in cookies)
        self._connection = ExitStack()
        self._socket = self._connection.enter_context(connect(
            self.base_url.replace("http", "ws", 1) + "/_stcore/stream",
            subprotocols=[Subprotocol("streamlit"), Subprotocol(self.xsrf)],
            additional_headers={"Cookie": self._cookie_header, "Origin": self.base_url},
            max_size=None, open_timeout=TIMEOUT_SECONDS))
        self.session_id: str | None = None
        self.page_script_hash = ""
        self.page = self._run(ClientState())

    def close(self) -> None:
        self._connection.close()

    def _send(self, message: BackMsg) -> None:
        self._socket.send(message.SerializeToString())

    def _receive(self) -> ForwardMsg:
        message = ForwardMsg()
        message.ParseFromString(self._socket.recv(timeout=TIMEOUT_SECONDS))
        return message

    def _run(self, state: ClientState) -> Page:
        """Reruns the script with ``state`` and collects what it draws until it ends."""
        state.page_script_hash = self.page_script_hash
        state.context_info.CopyFrom(ContextInfo(url=self.base_url + "/", timezone="UTC"))
        self._send(BackMsg(rerun_script=state))
        page = Page()
        while True:
            message = self._receive()
            kind = message.WhichOneof("type")
            if kind == "new_session":
                self.session_id = message.new_session.initialize.session_id
                self.page_script_hash = message.new_session.page_script_hash
            elif kind == "delta" and message.delta.WhichOneof("type") == "new_element":
                _read_element(message.delta.new_element, page)
            elif kind == "script_finished":
                if message.script_finished == ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                    page = Page()  # superseded by a rerun already on its way
                    continue
                return page

    def upload(self, name: str, data: bytes, mime: str = "image/png") -> Page:
        """Uploads a file to the page's uploader, as its frontend does; the page drawn."""
        if self.page.uploader_id is None or self.session_id is None:
            raise RuntimeError("this page has no file uploader (or no session yet)")
        request_id = uuid.uuid4().hex
        self._send(BackMsg(file_urls_request=FileURLsRequest(
            request_id=request_id, file_names=[name], session_id=self.session_id)))
        while (message := self._receive()).WhichOneof("type") != "file_urls_response":
            pass
        urls = message.file_urls_response.file_urls[0]
        self._put(urls.upload_url, name, data, mime)
        info = UploadedFileInfo(name=name, size=len(data), file_id=urls.file_id,
                                file_urls=urls)
        state = ClientState()
        state.widget_states.widgets.append(WidgetState(
            id=self.page.uploader_id,
            file_uploader_state_value=FileUploaderState(uploaded_file_info=[info])))
        self.page = self._run(state)
        return self.page

    def _put(self, url: str, name: str, data: bytes, mime: str) -> None:
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                f"filename=\"{name}\"\r\nContent-Type: {mime}\r\n\r\n").encode() + data + \
            f"\r\n--{boundary}--\r\n".encode()
        target = url if url.startswith("http") else self.base_url + url
        request = urllib.request.Request(target, data=body, method="PUT", headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "X-Xsrftoken": self.xsrf})
        self._http.open(request, timeout=TIMEOUT_SECONDS).read()


def _read_element(element, page: Page) -> None:
    kind = element.WhichOneof("type")
    if kind == "heading":
        page.texts.append(element.heading.body)
    elif kind == "markdown":
        page.texts.append(element.markdown.body)
    elif kind == "alert":
        page.texts.append(element.alert.body)
        if element.alert.format == element.alert.ERROR:
            page.errors.append(element.alert.body)
    elif kind == "exception":
        page.exceptions.append(f"{element.exception.type}: {element.exception.message}")
    elif kind == "file_uploader":
        page.uploader_id = element.file_uploader.id


def timed_upload(session: DashboardSession, name: str, data: bytes) -> tuple[float, Page]:
    """Seconds from asking to upload to the end of the page's run, and the page."""
    started = time.perf_counter()
    page = session.upload(name, data)
    return time.perf_counter() - started, page
