"""Web pages of `urls:` sources: fetched once, cached by content, re-fetched on request.

Standard library only. A page is fetched with a per-operation timeout (connect, each read)
and a bound on its total time (a server trickling bytes cannot hold a fetch forever), a size
cap (a page over it is an error, never a truncated body cached as if whole), http(s) only,
at most MAX_REDIRECTS redirects, each target checked like the URL itself.

Cache layout (cache_dir): one file per body, named by its sha256, and INDEX_NAME, a JSON map
url -> {sha256, content_type, fetched_at}. Both are written atomically (temp + os.replace),
so a killed fetch leaves the previous state. Nothing here logs: errors go back in Page.error
and name no URL (the caller pairs them with Page.url, the URL as the user wrote it).

The network modules (http.client, ssl, urllib.request) are imported only when something is
fetched: cached_pages sits on the no-op path of `amelia run`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass

from amelia import __version__

MB = 1024 * 1024
DEFAULT_MAX_BYTES = 100 * MB
DEFAULT_TIMEOUT = 20.0
TOTAL_FACTOR = 3  # a whole fetch (redirects included) may take TOTAL_FACTOR x timeout
MAX_REDIRECTS = 5
MAX_URL_LENGTH = 8192
WORKERS = 4
INDEX_NAME = "index.json"
USER_AGENT = f"amelia/{__version__}"
_READ_SIZE = 64 * 1024
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_REDIRECTS = (301, 302, 303, 307, 308)


@dataclass(frozen=True)
class Page:
    url: str  # as given
    sha256: str  # of the cached body ("" when there is none)
    path: str  # absolute path of the cached body file ("" when there is none)
    content_type: str
    error: str = ""  # why it could not be fetched ("" if ok)


def url_problem(url: str) -> str | None:
    """Why `url` may not be fetched, or None. Messages do not repeat the URL."""
    if not isinstance(url, str):
        return "must be a string"
    if not url:
        return "is empty"
    if len(url) > MAX_URL_LENGTH:
        return f"is longer than {MAX_URL_LENGTH} characters"
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return "contains whitespace or control characters (percent-encode them)"
    try:
        parts = urllib.parse.urlsplit(url)
        _ = parts.port  # raises ValueError on a bad port
    except ValueError as e:
        return f"is not a valid URL ({e})"
    if parts.scheme.lower() not in ("http", "https"):
        if not parts.scheme:
            return "has no scheme: write it as https://… or http://…"
        return f"uses {parts.scheme}:, not http or https"
    if "@" in parts.netloc:
        return "contains credentials (user:password@host); they are never sent to web pages"
    if not parts.hostname:
        return "has no host"
    return None


def cached_pages(urls, cache_dir: str) -> dict[str, str]:
    """url -> sha256 of its cached body, for the given urls that are cached. Reads the index only."""
    index = _read_index(cache_dir)
    return {u: index[u]["sha256"] for u in urls if u in index}


def fetch_pages(
    urls: list[str],
    cache_dir: str,
    refresh: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> list[Page]:
    """One Page per url, in the order given. A cached url is not fetched unless `refresh`;
    with `refresh`, a failed fetch keeps the cached body (Page has it, plus the error)."""
    cache_dir = os.path.abspath(cache_dir)
    os.makedirs(cache_dir, exist_ok=True)
    index = _read_index(cache_dir)

    results: dict[str, Page] = {}
    todo: list[str] = []
    for url in dict.fromkeys(urls):  # each distinct url once, order kept
        problem = url_problem(url)
        if problem is not None:
            results[url] = Page(url, "", "", "", f"URL {problem}")
            continue
        old = _page_from_entry(url, index.get(url), cache_dir)
        if old is not None and not refresh:
            results[url] = old
        else:
            todo.append(url)

    if todo:
        from concurrent.futures import ThreadPoolExecutor

        opener = _opener()  # per call: proxy settings are read from the environment now
        fetch = functools.partial(_fetch_one, opener=opener, cache_dir=cache_dir,
                                  timeout=timeout, max_bytes=max_bytes)
        with ThreadPoolExecutor(max_workers=min(WORKERS, len(todo))) as pool:
            fetched = list(pool.map(fetch, todo))
        updates = {}
        for url, page in zip(todo, fetched):
            if page.error:
                old = _page_from_entry(url, index.get(url), cache_dir)
                if old is not None:  # keep what the cache had, report the failure
                    page = Page(url, old.sha256, old.path, old.content_type, page.error)
            else:
                updates[url] = {"sha256": page.sha256, "content_type": page.content_type,
                                "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            results[url] = page
        if updates:
            # Re-read just before writing: another process may have added entries meanwhile.
            merged = _read_index(cache_dir)
            merged.update(updates)
            _write_atomic(os.path.join(cache_dir, INDEX_NAME),
                          json.dumps(merged, indent=1, sort_keys=True).encode(), cache_dir)
    return [results[u] for u in urls]


# --- cache ------------------------------------------------------------------------------


def _read_index(cache_dir: str) -> dict[str, dict]:
    """The index, keeping only well-formed entries (a damaged cache is refetched, not trusted:
    a sha256 that is not 64 hex digits would otherwise name a path outside cache_dir)."""
    try:
        with open(os.path.join(cache_dir, INDEX_NAME), "rb") as f:
            raw = json.loads(f.read())
    except (OSError, ValueError):
        return {}
    if not isinstance(raw, dict):
        return {}
    out = {}
    for url, e in raw.items():
        sha = e.get("sha256") if isinstance(e, dict) else None
        if isinstance(sha, str) and _SHA_RE.match(sha):
            ct = e.get("content_type")
            out[url] = {"sha256": sha, "content_type": ct if isinstance(ct, str) else "",
                        "fetched_at": str(e.get("fetched_at", ""))}
    return out


def _page_from_entry(url: str, entry: dict | None, cache_dir: str) -> Page | None:
    if entry is None:
        return None
    path = os.path.join(cache_dir, entry["sha256"])
    if not os.path.isfile(path):  # body gone (cache cleaned): fetch again
        return None
    return Page(url, entry["sha256"], path, entry["content_type"])


def _write_atomic(path: str, data: bytes, cache_dir: str) -> None:
    from ..atomic import write_bytes

    write_bytes(path, data, durable=True)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


# --- fetching ---------------------------------------------------------------------------


class _Fetch(Exception):
    """A fetch failed; the message is Page.error."""


class _Watch:
    """Bounds a fetch's total time: when the timer fires, every socket of the fetch is shut
    down, which ends any blocked connect/read at once (a per-read timeout cannot catch a
    server that sends one byte just often enough)."""

    def __init__(self, seconds: float):
        self._lock = threading.Lock()
        self._sockets: list = []
        self.fired = False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def start(self) -> None:
        self._timer.start()

    def cancel(self) -> None:
        self._timer.cancel()

    def add(self, sock) -> None:
        with self._lock:
            self._sockets.append(sock)
            fired = self.fired
        if fired:
            _shutdown(sock)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            socks = list(self._sockets)
        for s in socks:
            _shutdown(s)


def _shutdown(sock) -> None:
    import socket

    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _opener():
    """Only the handlers we want: proxies from the environment (read now), http, https. No
    redirect or error processors: every status comes back as a response and is handled in
    _fetch_chain (redirects are checked and counted there; no file:, ftp: or data: handler)."""
    import urllib.request

    http_handler, https_handler = _handlers()
    opener = urllib.request.OpenerDirector()
    for h in (urllib.request.ProxyHandler(), http_handler(), https_handler()):
        opener.add_handler(h)
    return opener


@functools.lru_cache(maxsize=None)
def _handlers():
    """urllib handlers whose connections register their sockets with the request's _Watch
    (defined on first use, to keep the network modules out of a no-op run)."""
    import http.client
    import ssl
    import urllib.request

    def watched(base):
        class Conn(base):
            def __init__(self, *args, watch: _Watch, **kwargs):
                super().__init__(*args, **kwargs)
                self._watch = watch

            def connect(self):
                create = self._create_connection

                def registered(*a, **k):
                    s = create(*a, **k)
                    self._watch.add(s)  # the raw socket: covers the TLS handshake, proxy tunnel
                    return s

                self._create_connection = registered
                super().connect()
                self._watch.add(self.sock)  # the TLS socket, once wrapped

        return Conn

    http_conn = watched(http.client.HTTPConnection)
    https_conn = watched(http.client.HTTPSConnection)

    class HTTPHandler(urllib.request.HTTPHandler):
        def http_open(self, req):
            return self.do_open(functools.partial(http_conn, watch=req.amelia_watch), req)

    class HTTPSHandler(urllib.request.HTTPSHandler):
        def __init__(self):
            super().__init__()
            # Per opener, so SSL_CERT_FILE / SSL_CERT_DIR are read at fetch time.
            self._ctx = ssl.create_default_context()

        def https_open(self, req):
            return self.do_open(functools.partial(https_conn, watch=req.amelia_watch), req,
                                context=self._ctx)

    return HTTPHandler, HTTPSHandler


def _fetch_one(url: str, *, opener, cache_dir: str, timeout: float, max_bytes: int) -> Page:
    import http.client
    import urllib.error

    total = TOTAL_FACTOR * timeout
    watch = _Watch(total)
    watch.start()
    try:
        sha, path, ctype = _fetch_chain(url, opener, cache_dir, timeout, max_bytes, watch)
        return Page(url, sha, path, ctype)
    except _Fetch as e:
        msg = str(e)
    except urllib.error.URLError as e:
        msg = _describe(e.reason if isinstance(e.reason, BaseException) else e, timeout)
    except (OSError, http.client.HTTPException, ValueError) as e:
        msg = _describe(e, timeout)
    except Exception as e:  # a hostile or broken server must not crash the whole index run
        msg = f"cannot fetch: {type(e).__name__}: {e}"
    finally:
        watch.cancel()
    if watch.fired:
        msg = f"took longer than {total:g} s in total"
    return Page(url, "", "", "", msg)


def _describe(e: BaseException, timeout: float) -> str:
    import http.client
    import socket
    import ssl

    if isinstance(e, (TimeoutError, socket.timeout)):
        return f"timed out (no data for {timeout:g} s)"
    if isinstance(e, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted: {e.verify_message}"
    if isinstance(e, ssl.SSLError):
        return f"TLS error: {e.reason or e}"
    if isinstance(e, socket.gaierror):
        return "cannot resolve the host name"
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, http.client.IncompleteRead):
        return "connection closed before the whole page arrived"
    if isinstance(e, http.client.HTTPException):
        return f"bad HTTP response ({type(e).__name__})"
    if isinstance(e, OSError):
        return f"network error: {e.strerror or e}"
    return f"cannot fetch: {e}"


def _ascii(url: str) -> str:
    """http.client sends ASCII only: IDNA-encode the host, percent-encode the rest."""
    if url.isascii():
        return url
    p = urllib.parse.urlsplit(url)
    try:
        host = p.hostname.encode("idna").decode("ascii")
    except UnicodeError:
        raise _Fetch("the host name is not a valid internationalized name") from None
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{p.port}" if p.port is not None else "")
    q = functools.partial(urllib.parse.quote, safe="/:?#[]@!$&'()*+,;=%~")
    return urllib.parse.urlunsplit((p.scheme, netloc, q(p.path), q(p.query), q(p.fragment)))


def _fetch_chain(url, opener, cache_dir, timeout, max_bytes, watch):
    import urllib.request

    current = url
    for _ in range(MAX_REDIRECTS + 1):
        req = urllib.request.Request(_ascii(current), headers={
            "User-Agent": USER_AGENT, "Accept-Encoding": "identity", "Accept": "*/*"})
        req.amelia_watch = watch
        with opener.open(req, timeout=timeout) as resp:
            status = resp.status
            if status in _REDIRECTS:
                location = resp.headers.get("Location")
                if not location:
                    raise _Fetch(f"HTTP {status} redirect without a Location")
                target = urllib.parse.urljoin(current, location.strip())
                problem = url_problem(target)
                if problem:
                    raise _Fetch(f"redirected to a URL that is refused: it {problem}")
                current = target
                continue
            if not 200 <= status < 300:
                raise _Fetch(f"HTTP {status}")
            ctype = _clean(resp.headers.get("Content-Type", ""))
            sha, path = _store_body(resp, cache_dir, max_bytes, watch)
            return sha, path, ctype
    raise _Fetch(f"more than {MAX_REDIRECTS} redirects")


def _clean(value: str) -> str:
    return "".join(c for c in value if c.isprintable())[:200].strip()


def _cap_text(n: int) -> str:
    return f"{n / MB:g} MB" if n >= MB else f"{n} B"


def _store_body(resp, cache_dir: str, max_bytes: int, watch: _Watch) -> tuple[str, str]:
    """Stream the body into a temp file while hashing; over the cap is an error (never a
    partial body), a whole body lands at cache_dir/<sha256>."""
    too_big = _Fetch(f"larger than the {_cap_text(max_bytes)} cap")
    length = resp.headers.get("Content-Length")
    if length and length.strip().isdigit() and int(length) > max_bytes:
        raise too_big  # refuse before reading anything
    h = hashlib.sha256()
    size = 0
    fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            while True:
                # read1: at most one system call, so a trickle still returns often and the
                # watch's shutdown ends it (read(n) would wait for n bytes).
                data = resp.read1(_READ_SIZE)
                if not data:
                    break
                size += len(data)
                if size > max_bytes:
                    raise too_big
                h.update(data)
                f.write(data)
            if watch.fired:  # the end may be the watch's shutdown, not the page's end
                raise _Fetch("took too long")
            if resp.length:  # Content-Length promised more than arrived
                raise _Fetch("connection closed before the whole page arrived")
            f.flush()
            os.fsync(f.fileno())
        sha = h.hexdigest()
        path = os.path.join(cache_dir, sha)
        os.replace(tmp, path)  # same content, same name: replacing an existing copy is harmless
        return sha, path
    except BaseException:
        _unlink(tmp)
        raise
