"""Plotly's bundles as the browser gets them: which files, under which versioned names, and how
they are served. No Streamlit here: `app.asgi` loads this before any script runs.

Plotly's full bundle (4.8 MB, from the plotly package) takes a fresh browser seconds to parse
and run, so the chart pages draw with a partial bundle of only the trace types they need
(scatter, bar, heatmap: 1.0 MB, 368 kB compressed), built from plotly.js's own sources of the
package's plotly.js version by app/vendor/plotly.js-lab-dist-min/build.mjs (its README says how;
MIT licence; tests/app/test_browser_cold.py checks the version); app.charts picks the bundle per
chart.

Streamlit's static file serving (app/static/, where `copy_to_static` puts the bundles) would
gzip each 1 MB response anew in the server's event loop, with no Cache-Control, and serves its
own frontend's scripts uncompressed (a Run page loads about 5.4 MB of them, which gzip to 30%: most
of what a first visit over a real network waits for). Under app/asgi.py (`make run`),
`PrecompressedStatic` answers those URLs from memory instead, each compressed once (the bundles at
start-up, Streamlit's scripts at their first request, in a thread) and cacheable for a year (the
bundles' names carry the plotly.js version and Streamlit's carry a content hash, so a cached copy
is never another version's), and `EarlyBundleInPages` has a chart page's HTML fetch the partial
bundle at once, at high priority, and the frontend code of the elements its first chart waits
for (Streamlit asks for an element's code only once the element arrives, which on a first visit
cost the first chart about 0.3 s). Run without them (`streamlit run app/streamlit_app.py`), the
static serving still answers the same URLs.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import re
import shutil
from pathlib import Path

import anyio
import plotly

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
PARTIAL_DIR = HERE / "vendor" / "plotly.js-lab-dist-min"
PARTIAL_JS = PARTIAL_DIR / "plotly-lab.min.js"
# the trace types built into the partial bundle (build.mjs builds it from the same list)
PARTIAL_TRACES = frozenset(json.loads((PARTIAL_DIR / "package.json").read_text())["traces"])
CACHE_CONTROL = b"public, max-age=31536000, immutable"
# Streamlit's frontend: static/js/<name>.<hash>.js and static/css/… (found without importing it)
STREAMLIT_STATIC = Path(importlib.util.find_spec("streamlit").submodule_search_locations[0],
                        "static")
STREAMLIT_ASSET = re.compile(r"(?:^|/)(static/(?:js|css)/[\w.-]+\.(js|css))$")
CONTENT_TYPES = {"js": b"text/javascript; charset=utf-8", "css": b"text/css; charset=utf-8"}


def bundle_version(path: Path) -> str:
    """The plotly.js version a bundle says in its header comment ("plotly.js … v4.1.1")."""
    with open(path, encoding="utf-8") as f:
        head = f.read(300)
    match = re.search(r"plotly\.js[^\n]* v(\d+\.\d+\.\d+\S*)", head)
    if not match:
        raise ValueError(f"no plotly.js version in the header of {path}")
    return match.group(1)


# served names, with the version: a cached bundle is never taken for another version's
FULL_NAME = f"plotly-{bundle_version(PLOTLY_JS)}.min.js"
PARTIAL_NAME = f"plotly-lab-{bundle_version(PARTIAL_JS)}.min.js"
PLOTLY_BUNDLES = {FULL_NAME: PLOTLY_JS, PARTIAL_NAME: PARTIAL_JS}  # served name -> its file
PREFIX = "/app/static/"  # Streamlit's static serving's URLs (after any base URL path)
CHART_PAGES = ("run", "compare", "experiments")  # the URL paths of the pages that draw charts
# the frontend chunks of the elements a chart page's first chart waits for: st.html (which runs
# `app.charts.preload`) and the custom component that draws the chart (app/charts.py)
EARLY_CHUNKS = ("Html", "BidiComponent")
_IMPORT = re.compile(r'(?:from|import)\s*"\./([\w.-]+\.js)"')  # a chunk's static imports


def chunk_files(names: tuple[str, ...]) -> list[str]:
    """The files of Streamlit's frontend chunks `names` (a chunk's file is `<name>.<hash>.js`)
    and of every chunk they import, less those that index.html already preloads. A name with
    no file (a Streamlit release that renamed it) adds nothing: the page only loads slower, and
    tests/app/test_browser_cold.py says which name is gone."""
    folder = STREAMLIT_STATIC / "static" / "js"
    known = set(re.findall(r"static/js/([\w.-]+\.js)", (STREAMLIT_STATIC / "index.html")
                           .read_text(encoding="utf-8")))
    todo, found = [], []
    for name in names:
        todo += [path.name for path in folder.glob(f"{name}.*.js")
                 if re.fullmatch(rf"{re.escape(name)}\.[\w-]+\.js", path.name)]
    while todo:
        file = todo.pop()
        if file in known:
            continue
        known.add(file)
        found.append(file)
        todo += _IMPORT.findall((folder / file).read_text(encoding="utf-8"))
    return sorted(found)


# in a chart page's HTML: the partial bundle's download starts with the page's own scripts, at
# high priority (a script added later is fetched at low priority, behind the lazily loaded
# chunks of Streamlit's frontend); `app.charts.preload` then runs it from the browser's cache.
# The chunks of EARLY_CHUNKS come with it: the frontend asks for an element's code only once the
# websocket has opened and the element arrived, while the server is busy with the page's script
EARLY = (f'<link rel="preload" as="script" fetchpriority="high" href="app/static/{PARTIAL_NAME}">'
         + "".join(f'<link rel="modulepreload" crossorigin href="./static/js/{file}">'
                   for file in chunk_files(EARLY_CHUNKS)))


def copy_to_static() -> None:
    """Put the bundles where Streamlit's static serving finds them (app/static/)."""
    for name, source in PLOTLY_BUNDLES.items():
        target = STATIC / name
        if not target.is_file() or target.stat().st_size != source.stat().st_size:
            STATIC.mkdir(exist_ok=True)
            shutil.copyfile(source, target)


def _accepts_gzip(scope: dict) -> bool:
    return any(key == b"accept-encoding" and b"gzip" in value.lower()
               for key, value in scope.get("headers", ()))


def _etag(body: bytes) -> bytes:
    return b'"%s"' % hashlib.sha256(body).hexdigest()[:32].encode()


def _static_key(path: str) -> str | None:
    """The file a URL path asks for: `app/static/<bundle>` or Streamlit's `static/js|css/<name>`
    (after any base URL path); None for anything else."""
    if PREFIX in path:
        return "app/static/" + path.rpartition(PREFIX)[2]
    match = STREAMLIT_ASSET.search(path)
    return match.group(1) if match else None


class PrecompressedStatic:
    """ASGI middleware: GET (or HEAD) of a bundle or of a script or style sheet of Streamlit's
    frontend, from a client that takes gzip, is answered with the file gzip-compressed once here,
    cacheable for a year, with an ETag (304 when the browser already has it); anything else goes
    on to Streamlit."""

    def __init__(self, app) -> None:
        self.app = app
        self.bodies = {f"app/static/{name}": gzip.compress(path.read_bytes(), 9, mtime=0)
                       for name, path in PLOTLY_BUNDLES.items()}
        self.etags = {key: _etag(body) for key, body in self.bodies.items()}

    async def _body(self, key: str) -> bytes | None:
        """The compressed file, compressed at its first request (in a thread, not to stall the
        event loop) and kept; None when the key names no such file."""
        if key not in self.bodies:
            path = STREAMLIT_STATIC / key
            if key.startswith("app/") or not path.is_file():
                return None
            body = await anyio.to_thread.run_sync(
                lambda: gzip.compress(path.read_bytes(), 6, mtime=0))
            self.bodies[key], self.etags[key] = body, _etag(body)
        return self.bodies[key]

    async def __call__(self, scope, receive, send) -> None:
        key = (_static_key(scope.get("path", "")) if scope["type"] == "http"
               and scope.get("method") in ("GET", "HEAD") and _accepts_gzip(scope) else None)
        body = await self._body(key) if key else None
        if body is None:
            await self.app(scope, receive, send)
            return
        etag = self.etags[key]
        fresh = any(name == b"if-none-match" and etag in value
                    for name, value in scope.get("headers", ()))
        headers = [(b"cache-control", CACHE_CONTROL), (b"etag", etag),
                   (b"vary", b"Accept-Encoding")]
        if not fresh:
            headers += [(b"content-type", CONTENT_TYPES[key.rpartition(".")[2]]),
                        (b"content-encoding", b"gzip"),
                        (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 304 if fresh else 200,
                    "headers": headers})
        await send({"type": "http.response.body",
                    "body": body if scope["method"] == "GET" and not fresh else b""})


class EarlyBundleInPages:
    """ASGI middleware: the HTML of a chart page (/run, /compare, /experiments: Streamlit's one
    page for every path) gets `EARLY` in its head. Requested uncompressed (it is 2 kB)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if (scope["type"] != "http" or scope.get("method") != "GET"
                or scope.get("path", "").rstrip("/").rpartition("/")[2] not in CHART_PAGES):
            await self.app(scope, receive, send)
            return
        scope = {**scope, "headers": [(key, value) for key, value in scope["headers"]
                                      if key != b"accept-encoding"]}
        start, chunks = {}, []

        async def inject(message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = b"".join(chunks)
            html = any(key == b"content-type" and value.startswith(b"text/html")
                       for key, value in start["headers"])
            if html and b"</head>" in body:
                body = body.replace(b"</head>", EARLY.encode() + b"</head>", 1)
            await send({**start, "headers": [
                (key, str(len(body)).encode() if key == b"content-length" else value)
                for key, value in start["headers"]]})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, inject)
