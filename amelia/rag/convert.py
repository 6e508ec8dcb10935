"""Files to text for indexing: type sniffed from content, size-capped, cached by content hash.

- markdown and text: read directly (UTF-8, else a legacy encoding, said in the note); a
  text file with NUL bytes is binary and skipped.
- DOCX, PPTX, XLSX, HTML: docling's model-free backends when docling is installed (the
  `amelia[docling]` extra). Without it HTML goes through a small html.parser converter and
  the Office formats are skipped with a reason naming the extra.
- PDF: text without layout analysis, since docling's layout models are not installed (and
  are never downloaded): pypdfium2's text layer, with paragraph breaks from line gaps.
  docling's model-free NativePdfPipeline was tried: the same text from the same parser,
  one paragraph per line, a 4 s import, and errors full of hashes; pypdfium2 (a core
  dependency, and docling's own) gives it everywhere, with or without the extra.

The name never decides the type (a .md file that is a PDF is a PDF); it only tells
markdown from plain text. docling takes seconds to import: it is imported on the first
file that needs it, once per process.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import threading
import zipfile
from dataclasses import dataclass

MAX_BYTES = 100 * 1024 * 1024
CONVERTER_VERSION = 1  # bump when converted text for the same bytes changes
HEAD_BYTES = 64 * 1024  # what sniff() looks at
MARKDOWN_SUFFIXES = (".md", ".markdown", ".mdown", ".mkd", ".mdx")
PDF_NOTE = "PDF text without layout analysis: docling's layout models are not installed"
EXTRA = "amelia[docling]"


@dataclass(frozen=True)
class Converted:
    text: str
    format: str  # "markdown" | "text" | "html" | "pdf" | "docx" | "pptx" | "xlsx"
    markdown: bool  # chunk with heading paths
    note: str = ""


class Skipped(Exception):
    """A file that is not indexed, and why. `lasting`: the same bytes would be skipped again
    with this setup (corrupt, unsupported), so convert_cached remembers it; a size-cap or
    missing-extra skip is not remembered (raising the cap or installing docling fixes it)."""

    def __init__(self, reason: str, lasting: bool = True):
        super().__init__(reason)
        self.reason = reason
        self.lasting = lasting


# ---- sniffing ---------------------------------------------------------------------------

# Magic numbers of common non-text files: named in the skip reason.
_MAGIC = (
    (b"\x7fELF", "ELF binary"),
    (b"MZ", "Windows executable"),
    (b"\xcf\xfa\xed\xfe", "Mach-O binary"),
    (b"\xce\xfa\xed\xfe", "Mach-O binary"),
    (b"\xca\xfe\xba\xbe", "Mach-O or Java class file"),
    (b"\x00asm", "WebAssembly module"),
    (b"\x89PNG\r\n\x1a\n", "PNG image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"GIF87a", "GIF image"),
    (b"GIF89a", "GIF image"),
    (b"RIFF", "RIFF media (WAV/AVI/WebP)"),
    (b"\x1f\x8b", "gzip archive"),
    (b"BZh", "bzip2 archive"),
    (b"\xfd7zXZ\x00", "xz archive"),
    (b"7z\xbc\xaf\x27\x1c", "7z archive"),
    (b"Rar!\x1a\x07", "RAR archive"),
    (b"\x28\xb5\x2f\xfd", "zstd archive"),
    (b"SQLite format 3\x00", "SQLite database"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "legacy Office document (.doc/.xls/.ppt): save it as .docx/.xlsx/.pptx"),
    (b"ID3", "MP3 audio"),
    (b"OggS", "Ogg media"),
    (b"fLaC", "FLAC audio"),
    (b"%!PS", "PostScript"),
)
_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))


def _office_kind(names) -> str:
    """docx/pptx/xlsx from a zip's member names (an OOXML package has [Content_Types].xml)."""
    names = set(names)
    if "[Content_Types].xml" not in names:
        return ""
    for prefix, kind in (("word/", "docx"), ("ppt/", "pptx"), ("xl/", "xlsx")):
        if any(n.startswith(prefix) for n in names):
            return kind
    return ""


def _zip_names_in_head(head: bytes) -> list[str]:
    """Member names from the local file headers within `head` (a zip's start)."""
    names, i = [], 0
    while True:
        i = head.find(b"PK\x03\x04", i)
        if i < 0 or i + 30 > len(head):
            return names
        n = int.from_bytes(head[i + 26 : i + 28], "little")
        names.append(head[i + 30 : i + 30 + n].decode("utf-8", "replace"))
        i += 30 + n


def _looks_html(head: bytes) -> bool:
    s = head[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    while s.startswith(b"<!--") or s.startswith(b"<?xml"):  # comments, an XHTML prolog
        end = s.find(b"-->" if s.startswith(b"<!--") else b"?>")
        if end < 0:
            return False
        s = s[end + 3 :].lstrip()
    return s.startswith(b"<!doctype html") or s.startswith(b"<html")


def _binary_kind(head: bytes) -> str:
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head.startswith(b"PK\x03\x04"):
        return "zip archive (not an Office document)"
    return ""


def sniff(head: bytes, name: str) -> str:
    """The format of a file from its first bytes; the name only tells markdown from text.
    "" = unsupported. Zip members are read from the local headers within `head`
    (convert() checks the full member list)."""
    if b"%PDF-" in head[:1024]:  # the header may follow up to 1 KB of junk
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        return _office_kind(_zip_names_in_head(head))
    if _binary_kind(head):
        return ""
    if not any(head.startswith(b) for b, _ in _BOMS[1:]) and b"\x00" in head:
        return ""
    if _looks_html(_decoded_head(head)):
        return "html"
    return "markdown" if name.lower().endswith(MARKDOWN_SUFFIXES) else "text"


def _decoded_head(head: bytes) -> bytes:
    """UTF-16 text as bytes a sniff can read (ASCII-compatible)."""
    for bom, enc in _BOMS[1:]:
        if head.startswith(bom):
            return head.decode(enc, "replace").encode("utf-8", "replace")
    return head


def describe_unsupported(head: bytes) -> str:
    return _binary_kind(head) or ("binary data" if b"\x00" in head else "unknown format")


# ---- text -------------------------------------------------------------------------------


def _decode(data: bytes) -> tuple[str, str]:
    """(text, note). UTF-8 (with or without BOM), UTF-16 with a BOM, else cp1252/latin-1,
    which never fail: the note says so, since the text may then be slightly wrong."""
    for bom, enc in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(enc), ("" if enc == "utf-8-sig" else f"decoded as {enc.upper()}")
            except UnicodeDecodeError:
                break
    if b"\x00" in data:
        raise Skipped("binary data (NUL bytes) in a text file")
    try:
        return data.decode("utf-8"), ""
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "not UTF-8: decoded as Windows-1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "not UTF-8: decoded as Latin-1"


def _text(data: bytes, fmt: str) -> Converted:
    text, note = _decode(data)
    control = sum(1 for c in text[:65536] if ord(c) < 32 and c not in "\t\n\r\f\v\x1b")
    if control > max(8, len(text[:65536]) // 100):  # e.g. a binary format without magic number
        raise Skipped("binary data (control characters) in a text file")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return Converted(text, fmt, fmt == "markdown", note)


# ---- HTML without docling ---------------------------------------------------------------


def html_to_text(html: str) -> str:
    """Markdown-ish text of an HTML page with the standard library: headings as #, list
    items as -, paragraphs separated by blank lines; scripts, styles and <head> dropped."""
    from html.parser import HTMLParser

    blocks = {"p", "div", "section", "article", "header", "footer", "main", "nav", "aside", "table",
              "tr", "ul", "ol", "blockquote", "pre", "figure", "figcaption", "dl", "dt", "dd", "hr", "form"}
    skip = {"script", "style", "head", "template", "noscript", "svg"}

    class P(HTMLParser):
        def __init__(self):
            super().__init__(convert_charrefs=True)
            self.out: list[str] = []
            self.skipping = 0
            self.pre = 0

        def _break(self, prefix: str = ""):
            self.out.append("\n\n" + prefix)

        def handle_starttag(self, tag, attrs):
            if tag in skip:
                self.skipping += 1
            elif tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
                self._break("#" * int(tag[1]) + " ")
            elif tag == "li":
                self._break("- ")
            elif tag == "br":
                self.out.append("\n")
            elif tag in ("td", "th"):
                self.out.append(" | ")
            elif tag in blocks:
                self._break()
                self.pre += tag == "pre"

        def handle_endtag(self, tag):
            if tag in skip:
                self.skipping = max(0, self.skipping - 1)
            elif tag in blocks or tag in ("h1", "h2", "h3", "h4", "h5", "h6", "li"):
                self.pre -= tag == "pre" and self.pre > 0
                self._break()

        def handle_data(self, data):
            if not self.skipping:
                self.out.append(data if self.pre else _spaced(data))

    p = P()
    p.feed(html)
    p.close()
    paras = []
    for block in "".join(p.out).split("\n\n"):
        lines = [" ".join(line.split()) for line in block.split("\n")]
        block = "\n".join(line for line in lines if line)
        if block and block.strip("#- |"):
            paras.append(block)
    return "\n\n".join(paras) + ("\n" if paras else "")


def _spaced(data: str) -> str:
    """Collapse whitespace but keep one space at either edge (words across tags)."""
    core = " ".join(data.split())
    if not core:
        return " " if data else ""
    return (" " if data[:1].isspace() else "") + core + (" " if data[-1:].isspace() else "")


def _html_fallback(data: bytes) -> Converted:
    text, note = _decode(data)
    return Converted(html_to_text(text), "html", True, note)


# ---- PDF ------------------------------------------------------------------------------

_pdfium_lock = threading.Lock()  # pdfium is not thread-safe


def pdf_text(data: bytes) -> str:
    """The text layer of a PDF with pypdfium2: lines in pdfium's order, a blank line where
    the gap to the previous line exceeds 1.6 times the font size (a paragraph break; normal
    leading is about 1.2), and between pages."""
    import pypdfium2 as pdfium

    with _pdfium_lock:
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as e:
            msg = str(e)
            if "password" in msg.lower():
                raise Skipped("encrypted PDF (needs a password)") from e
            raise Skipped(f"corrupt PDF: {msg.split('.')[0]}") from e
        try:
            return "\n\n".join(p for p in (_page_text(pdf[i]) for i in range(len(pdf))) if p)
        except pdfium.PdfiumError as e:
            raise Skipped(f"corrupt PDF: {e}") from e
        finally:
            pdf.close()


def _page_text(page) -> str:
    import pypdfium2.raw as raw

    tp = page.get_textpage()
    try:
        text = tp.get_text_range()
        out: list[str] = []
        idx, prev_bottom = 0, None
        for line in text.split("\r\n"):
            if line.strip():
                try:
                    _, bottom, _, _ = tp.get_charbox(idx)
                    size = raw.FPDFText_GetFontSize(tp.raw, idx) or 10.0
                except Exception:  # an index pdfium cannot place: no break decision
                    bottom, size = None, 10.0
                if out and bottom is not None and prev_bottom is not None and prev_bottom - bottom > 1.6 * size:
                    out.append("")
                out.append(line.strip())
                prev_bottom = bottom if bottom is not None else prev_bottom
            idx += len(line) + 2
        return "\n".join(out).strip()
    finally:
        tp.close()
        page.close()


# ---- docling ----------------------------------------------------------------------------

_docling_lock = threading.Lock()  # one import, one converter, one conversion at a time
_docling_converter = None


def has_docling() -> bool:
    return importlib.util.find_spec("docling") is not None


def _converter():
    global _docling_converter
    if _docling_converter is None:
        import logging

        # docling logs a WARNING per bad file on stderr; the Skipped reason says it instead
        if logging.getLogger("docling").level == logging.NOTSET:
            logging.getLogger("docling").setLevel(logging.CRITICAL)
        from docling.datamodel.base_models import InputFormat
        from docling.document_converter import DocumentConverter

        # the model-free backends only: PDF goes through pdf_text() (see the module doc)
        _docling_converter = DocumentConverter(
            allowed_formats=[InputFormat.DOCX, InputFormat.PPTX, InputFormat.XLSX, InputFormat.HTML]
        )
    return _docling_converter


def _docling(data: bytes, fmt: str) -> str:
    from docling_core.types.io import DocumentStream

    with _docling_lock:
        conv = _converter()
        # the stream's name sets the format: the sniffed one, never the file's own name
        stream = DocumentStream(name=f"document.{fmt}", stream=io.BytesIO(data))
        try:
            result = conv.convert(stream, raises_on_error=False)
        except Exception as e:  # docling's backends raise whatever their parsers raise
            raise Skipped(f"corrupt {fmt.upper()}: {_short(e)}") from e
    status = getattr(result.status, "value", str(result.status))
    if status not in ("success", "partial_success"):
        errors = "; ".join(_short(err.error_message) for err in (result.errors or [])) or status
        raise Skipped(f"corrupt {fmt.upper()}: {errors}")
    return result.document.export_to_markdown()


def _short(e) -> str:
    s = " ".join(str(e).split()) or type(e).__name__
    s = re.sub(r"\s*(with hash |with key )?(key=)?\b[0-9a-f]{32,}\b", "", s)  # docling's content hashes
    return s if len(s) <= 200 else s[:197] + "..."


# ---- convert ----------------------------------------------------------------------------

_count_lock = threading.Lock()
_conversions = 0


def conversion_count() -> int:
    """How many files this process has converted (not answered from the cache)."""
    return _conversions


def _cap(n: int) -> str:
    return f"{n // (1024 * 1024)} MB" if n >= 1024 * 1024 and n % (1024 * 1024) == 0 else f"{n} bytes"


def _check_size(full_path: str, max_bytes: int) -> None:
    try:
        st = os.stat(full_path)
    except OSError as e:
        raise Skipped(f"cannot read: {e.strerror}", lasting=False) from e
    if not os.path.isfile(full_path):
        raise Skipped("not a regular file", lasting=False)
    if st.st_size > max_bytes:
        raise Skipped(f"over the {_cap(max_bytes)} cap ({st.st_size} bytes)", lasting=False)


def _read(full_path: str, max_bytes: int) -> bytes:
    _check_size(full_path, max_bytes)
    try:
        with open(full_path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise Skipped(f"cannot read: {e.strerror}", lasting=False) from e
    if len(data) > max_bytes:  # grew since the stat
        raise Skipped(f"over the {_cap(max_bytes)} cap", lasting=False)
    return data


def convert(full_path: str, max_bytes: int = MAX_BYTES) -> Converted:
    """The text of a file, or Skipped(reason)."""
    return _convert_bytes(_read(full_path, max_bytes), os.path.basename(full_path))


def _convert_bytes(data: bytes, name: str) -> Converted:
    global _conversions
    with _count_lock:
        _conversions += 1
    head = data[:HEAD_BYTES]
    fmt = sniff(head, name)
    if head.startswith(b"PK\x03\x04"):
        # the head may not reach every member's header: decide on the full list
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                fmt = _office_kind(z.namelist())
        except zipfile.BadZipFile as e:
            what = fmt.upper() if fmt else "zip archive"
            raise Skipped(f"corrupt {what}: damaged zip archive ({e})") from e
        if not fmt:
            raise Skipped("unsupported type (zip archive, not an Office document)")
    if not fmt:
        raise Skipped(f"unsupported type ({describe_unsupported(head)})")
    if fmt in ("markdown", "text"):
        return _text(data, fmt)
    if fmt == "pdf":
        text = pdf_text(data)
        if not text.strip():
            raise Skipped("PDF without a text layer (scanned pages need OCR, which is not available offline)")
        return Converted(text, "pdf", False, PDF_NOTE)
    if not has_docling():
        if fmt == "html":
            return _html_fallback(data)
        raise Skipped(
            f"{fmt.upper()} needs docling: pip install '{EXTRA}'",
            lasting=False,
        )
    return Converted(_docling(data, fmt), fmt, True)


def convert_cached(full_path: str, sha256: str, cache_dir: str, max_bytes: int = MAX_BYTES) -> Converted:
    """convert(), once per content: the text (or a lasting Skipped) is kept in cache_dir
    under the content hash. `sha256` is the caller's hash of the file; the bytes read are
    hashed again and a mismatch (the file changed meanwhile) is converted but not cached."""
    import hashlib

    _check_size(full_path, max_bytes)  # the cap applies to cached files too
    path = os.path.join(cache_dir, sha256[:2], f"{sha256}.{_variant()}.json")
    try:
        with open(path, encoding="utf-8") as f:
            entry = json.load(f)
        if "skipped" in entry:
            raise Skipped(entry["skipped"])
        return Converted(entry["text"], entry["format"], entry["markdown"], entry.get("note", ""))
    except (OSError, ValueError, KeyError, TypeError):
        pass  # absent or unreadable: convert again
    data = _read(full_path, max_bytes)
    cacheable = hashlib.sha256(data).hexdigest() == sha256
    try:
        out = _convert_bytes(data, os.path.basename(full_path))
    except Skipped as s:
        if s.lasting and cacheable:
            _write_atomic(path, {"skipped": s.reason})
        raise
    if cacheable:
        _write_atomic(path, {"format": out.format, "markdown": out.markdown, "note": out.note, "text": out.text})
    return out


def _variant() -> str:
    """The cache key's converter part: the same bytes convert differently with docling."""
    return f"v{CONVERTER_VERSION}{'d' if has_docling() else 's'}"


def _write_atomic(path: str, entry: dict) -> None:
    from ..atomic import write_text

    write_text(path, json.dumps(entry, ensure_ascii=False))
