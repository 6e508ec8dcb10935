"""amelia.rag.urls: `urls:` sources fetched from local servers, cached by content (issue 12, 1)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from amelia import __version__
from amelia.rag.urls import INDEX_NAME, MB, Page, cached_pages, fetch_pages, url_problem


class _State:
    def __init__(self):
        self.lock = threading.Lock()
        self.release = threading.Event()  # set at teardown: sleeping handlers end
        self.reset()

    def reset(self):
        self.pages = {}  # path -> (status, content_type, body)
        self.redirects = {}  # path -> Location
        self.hits = Counter()
        self.agents = []
        self.inflight = 0
        self.max_inflight = 0


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        st = self.server.st
        path = urlsplit(self.path).path
        with st.lock:
            st.hits[path] += 1
            st.agents.append(self.headers.get("User-Agent"))
            st.inflight += 1
            st.max_inflight = max(st.max_inflight, st.inflight)
        try:
            self._route(st, path)
        finally:
            with st.lock:
                st.inflight -= 1

    def _send(self, status, body=b"", ctype="text/html; charset=utf-8", length=True):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _route(self, st, path):
        if path in st.redirects:
            self.send_response(302)
            self.send_header("Location", st.redirects[path])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path in st.pages:
            status, ctype, body = st.pages[path]
            self._send(status, body, ctype)
        elif path == "/big-stream":  # no Content-Length: the cap must hold while streaming
            self._send(200, b"y" * int(self.headers.get("X-Size", "5000")), length=False)
        elif path == "/slow":
            st.release.wait(3)
            self._send(200, b"late")
        elif path == "/trickle":  # promises a lot, then one byte every 50 ms, forever
            self.send_response(200)
            self.send_header("Content-Length", str(10**6))
            self.end_headers()
            while not st.release.is_set():
                self.wfile.write(b"x")
                self.wfile.flush()
                st.release.wait(0.05)
        elif path.startswith("/n/"):  # later pages answer first
            i = int(path[3:])
            st.release.wait(0.05 * (6 - i))
            self._send(200, f"page {i}".encode(), "text/plain")
        else:
            self._send(404, b"no")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # clients that gave up: expected here
        pass


@pytest.fixture(scope="module")
def _server():
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.st = _State()
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield srv
    srv.st.release.set()
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def server(_server, monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)  # 127.0.0.1 must be reached directly
    _server.st.reset()
    _server.base = f"http://127.0.0.1:{_server.server_address[1]}"
    return _server


def page(server, path, body: bytes, status=200, ctype="text/html; charset=utf-8"):
    server.st.pages[path] = (status, ctype, body)
    return server.base + path


def leftovers(cache) -> list[str]:
    return [n for n in os.listdir(cache) if n.startswith(".tmp")]


def test_fetch_caches_by_content_and_does_not_refetch(server, tmp_path):
    cache = tmp_path / "cache"
    body = b"<h1>Hello</h1><p>distinctive words</p>"
    url = page(server, "/page", body)
    twin = page(server, "/twin", body)  # same bytes at another URL

    [p, q] = fetch_pages([url, twin], str(cache))
    sha = hashlib.sha256(body).hexdigest()
    assert p == Page(url, sha, str(cache / sha), "text/html; charset=utf-8")
    assert q.sha256 == sha and q.path == p.path  # one body file per content
    assert open(p.path, "rb").read() == body
    assert server.st.agents == [f"amelia/{__version__}"] * 2

    # Second call: served from the cache, no request.
    assert fetch_pages([url], str(cache)) == [p]
    assert server.st.hits["/page"] == 1
    assert cached_pages([url, server.base + "/other"], str(cache)) == {url: sha}
    index = json.loads((cache / INDEX_NAME).read_text())
    assert index[url]["sha256"] == sha and index[url]["fetched_at"].endswith("Z")
    assert leftovers(cache) == []


def test_refresh_refetches_and_a_changed_page_gets_a_new_hash(server, tmp_path):
    cache = str(tmp_path)
    url = page(server, "/page", b"version one")
    [old] = fetch_pages([url], cache)
    page(server, "/page", b"version two")
    assert fetch_pages([url], cache) == [old]  # no refresh: still the cached body
    [new] = fetch_pages([url], cache, refresh=True)
    assert server.st.hits["/page"] == 2
    assert new.sha256 == hashlib.sha256(b"version two").hexdigest() != old.sha256
    assert cached_pages([url], cache) == {url: new.sha256}


def test_a_failed_refresh_keeps_the_cached_body(server, tmp_path):
    cache = str(tmp_path)
    url = page(server, "/page", b"good body")
    [old] = fetch_pages([url], cache)
    page(server, "/page", b"oops", status=500)
    [p] = fetch_pages([url], cache, refresh=True)
    assert p.error == "HTTP 500"
    assert (p.sha256, p.path, p.content_type) == (old.sha256, old.path, old.content_type)
    assert open(p.path, "rb").read() == b"good body"
    assert cached_pages([url], cache) == {url: old.sha256}


def test_not_found_is_an_error_and_nothing_is_cached(server, tmp_path):
    url = server.base + "/missing"
    assert fetch_pages([url], str(tmp_path)) == [Page(url, "", "", "", "HTTP 404")]
    assert cached_pages([url], str(tmp_path)) == {}
    assert os.listdir(tmp_path) == []


def test_redirect_chain_is_followed_and_a_loop_stops(server, tmp_path):
    body = b"at the end of the chain"
    page(server, "/page", body)
    server.st.redirects["/r1"] = server.base + "/r2"  # absolute
    server.st.redirects["/r2"] = "/page"  # relative
    [p] = fetch_pages([server.base + "/r1"], str(tmp_path))
    assert p.error == "" and p.sha256 == hashlib.sha256(body).hexdigest()
    assert [server.st.hits[k] for k in ("/r1", "/r2", "/page")] == [1, 1, 1]
    assert cached_pages([server.base + "/r1"], str(tmp_path)) == {server.base + "/r1": p.sha256}

    server.st.redirects["/loop"] = "/loop"
    [p] = fetch_pages([server.base + "/loop"], str(tmp_path))
    assert p.error == "more than 5 redirects" and p.path == ""
    assert server.st.hits["/loop"] == 6  # the first request and five redirects


@pytest.mark.parametrize(
    "target", ["file:///etc/passwd", "ftp://127.0.0.1/x", "http://u:p@127.0.0.1/"]
)
def test_redirect_to_a_refused_url(server, tmp_path, target):
    server.st.redirects["/away"] = target
    [p] = fetch_pages([server.base + "/away"], str(tmp_path))
    assert p.error.startswith("redirected to a URL that is refused")
    assert p.sha256 == "" and os.listdir(tmp_path) == []


def test_a_body_over_the_cap_is_an_error_never_a_partial_body(server, tmp_path):
    cache = str(tmp_path)
    url = page(server, "/big", b"z" * 5000)
    stream = server.base + "/big-stream"
    pages = fetch_pages([url, stream], cache, max_bytes=1000)
    assert [p.error for p in pages] == ["larger than the 1000 B cap"] * 2
    assert all(p.sha256 == "" for p in pages)
    assert os.listdir(tmp_path) == []  # no body, no temp file, no index entry
    # Under the cap it is fine; a MB cap is named in MB.
    [ok] = fetch_pages([stream], cache, max_bytes=5000)
    assert ok.error == "" and os.path.getsize(ok.path) == 5000
    assert url_problem(url) is None


def test_the_mb_cap_is_named_in_mb(server, tmp_path):
    page(server, "/mb", b"m" * (MB + 1))
    [p] = fetch_pages([server.base + "/mb"], str(tmp_path), max_bytes=MB)
    assert p.error == "larger than the 1 MB cap"


def test_a_server_that_does_not_answer_times_out(server, tmp_path):
    start = time.monotonic()
    [p] = fetch_pages([server.base + "/slow"], str(tmp_path), timeout=0.5)
    assert time.monotonic() - start < 2
    assert p.error.startswith("timed out") and p.sha256 == ""


def test_a_trickling_server_is_bounded_in_total_time(server, tmp_path):
    start = time.monotonic()
    [p] = fetch_pages([server.base + "/trickle"], str(tmp_path), timeout=0.5)
    elapsed = time.monotonic() - start
    assert 1.4 < elapsed < 3  # the total bound is 3 x timeout; reads alone never time out
    assert p.error == "took longer than 1.5 s in total"
    assert os.listdir(tmp_path) == []


def test_connection_refused(server, tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    [p] = fetch_pages([f"http://127.0.0.1:{port}/"], str(tmp_path), timeout=2)
    assert p.error == "connection refused"


def test_concurrent_fetches_keep_the_order_given(server, tmp_path):
    urls = [f"{server.base}/n/{i}" for i in range(6)]
    pages = fetch_pages(urls + [urls[0]], str(tmp_path))
    assert [p.url for p in pages] == urls + [urls[0]]
    assert [open(p.path).read() for p in pages] == [f"page {i}" for i in range(6)] + ["page 0"]
    assert server.st.max_inflight >= 2  # fetched concurrently
    assert server.st.hits[urlsplit(urls[0]).path] == 1  # a repeated URL is fetched once


def test_a_bad_url_is_refused_without_a_request_and_others_still_fetch(server, tmp_path):
    good = page(server, "/page", b"fine")
    pages = fetch_pages(["file:///etc/passwd", good], str(tmp_path))
    assert pages[0].error.startswith("URL uses file:") and pages[0].path == ""
    assert pages[1].error == "" and open(pages[1].path, "rb").read() == b"fine"


def test_a_damaged_index_is_not_trusted(server, tmp_path):
    url = page(server, "/page", b"body")
    (tmp_path / INDEX_NAME).write_text("{not json")
    assert cached_pages([url], str(tmp_path)) == {}
    [p] = fetch_pages([url], str(tmp_path))
    assert p.error == "" and server.st.hits["/page"] == 1
    # An entry naming a path outside the cache is ignored (and refetched).
    (tmp_path / INDEX_NAME).write_text(json.dumps({url: {"sha256": "../../etc/passwd"}}))
    assert cached_pages([url], str(tmp_path)) == {}
    assert fetch_pages([url], str(tmp_path)) == [p]
    assert server.st.hits["/page"] == 2
    # A body deleted from the cache is fetched again.
    os.unlink(p.path)
    (tmp_path / INDEX_NAME).write_text(json.dumps({url: {"sha256": p.sha256, "content_type": ""}}))
    [again] = fetch_pages([url], str(tmp_path))
    assert again.sha256 == p.sha256 and os.path.isfile(again.path)
    assert server.st.hits["/page"] == 3
    assert cached_pages([url], str(tmp_path)) == {url: p.sha256}


@pytest.mark.parametrize(
    "url, fragment",
    [
        ("file:///etc/passwd", "not http or https"),
        ("ftp://example.com/x", "not http or https"),
        ("data:text/plain,hi", "not http or https"),
        ("javascript:alert(1)", "not http or https"),
        ("example.com/page", "no scheme"),
        ("http://user:secret@example.com/", "credentials"),
        ("https://token@example.com/", "credentials"),
        ("http:///path", "no host"),
        ("http://", "no host"),
        ("http://exa mple.com/", "whitespace"),
        ("http://example.com/a\n", "whitespace"),
        ("http://example.com/\x00", "control"),
        ("http://example.com:99999/", "not a valid URL"),
        ("http://[::1/", "not a valid URL"),
        ("", "empty"),
        ("http://example.com/" + "a" * 9000, "longer than"),
    ],
)
def test_url_problem_refuses(url, fragment):
    problem = url_problem(url)
    assert problem is not None and fragment in problem
    assert "secret" not in problem  # a refused URL is never echoed


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/a?b=c#d",
        "http://127.0.0.1:8080/x",
        "https://[::1]/",
        "HTTPS://Example.COM",
        "https://de.wikipedia.org/wiki/Köln",
    ],
)
def test_url_problem_accepts(url):
    assert url_problem(url) is None


def test_a_non_ascii_path_is_percent_encoded(server, tmp_path):
    page(server, "/wiki/K%C3%B6ln", b"cologne")
    [p] = fetch_pages([server.base + "/wiki/Köln"], str(tmp_path))
    assert p.error == "" and open(p.path, "rb").read() == b"cologne"


def test_https_verifies_the_certificate(tmp_path, monkeypatch):
    """https goes through the same watched connection; an untrusted certificate is an error,
    a trusted one (here via SSL_CERT_FILE, as a corporate CA would be) fetches."""
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.st = _State()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        srv.st.pages["/secure"] = (200, "text/plain", b"over tls")
        url = f"https://127.0.0.1:{srv.server_address[1]}/secure"
        cache = tmp_path / "cache"
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "none.pem"))
        [p] = fetch_pages([url], str(cache), timeout=2)
        assert p.error.startswith("TLS certificate not trusted") and p.path == ""
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        [p] = fetch_pages([url], str(cache), timeout=2)
        assert p.error == "" and open(p.path, "rb").read() == b"over tls"
    finally:
        srv.st.release.set()
        srv.shutdown()
        srv.server_close()
