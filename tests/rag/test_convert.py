"""File conversion: each type from a generated corpus, sniffing by content, skips with
reasons, and the conversion cache. Real docling and pdfium; docling tests skip without it."""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from pathlib import Path

import pytest

from amelia.rag import convert as conv
from amelia.rag.convert import Converted, Skipped, convert, convert_cached, html_to_text, sniff
from rag import corpus  # tests/ is on sys.path (see tests/fakes/__init__.py)

needs_docling = pytest.mark.skipif(not conv.has_docling(), reason="docling not installed (the amelia[docling] extra)")

SECTIONS = [
    ("Volcano facts", "The Mauna Loa volcano erupted in 1984 with slow lava flows.\n\nIt is the largest volcano on Earth."),
    ("Penguin habits", "Emperor penguins huddle together through the Antarctic winter."),
]
DISTINCT = ("Mauna Loa volcano erupted in 1984", "Emperor penguins huddle together")


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _check(c: Converted, fmt: str, markdown: bool):
    assert c.format == fmt and c.markdown is markdown
    for s in DISTINCT:
        assert s in c.text, (s, c.text)


def test_markdown_and_text(tmp_path):
    c = convert(str(corpus.write_markdown(tmp_path, "a.md", SECTIONS)))
    _check(c, "markdown", True)
    assert "# Volcano facts" in c.text and c.note == ""
    _check(convert(str(corpus.write_text(tmp_path, "a.txt", SECTIONS))), "text", False)


def test_pdf_text_without_layout_models(tmp_path):
    c = convert(str(corpus.write_pdf(tmp_path, "a.pdf", SECTIONS)))
    _check(c, "pdf", False)
    assert "without layout analysis" in c.note and "layout models are not installed" in c.note
    # paragraphs come back as blank-line separated blocks (from the line gaps)
    assert "Volcano facts\n\nThe Mauna Loa" in c.text


def test_pdf_over_several_pages(tmp_path):
    long = [("Part %d" % i, f"Paragraph {i} says the code word is zebra{i}. " * 8) for i in range(30)]
    c = convert(str(corpus.write_pdf(tmp_path, "long.pdf", long)))
    assert "zebra0" in c.text and "zebra29" in c.text
    assert c.text.count("\n\n") >= 59  # headings and paragraphs stay apart across pages


@needs_docling
@pytest.mark.parametrize("fmt", ["docx", "pptx", "html"])
def test_docling_formats(tmp_path, fmt):
    writer, ext = corpus.WRITERS[fmt]
    c = convert(str(writer(tmp_path, "a" + ext, SECTIONS)))
    _check(c, fmt, True)
    assert "# Volcano facts" in c.text  # headings become markdown headings (## or #)
    assert "script text must not be indexed" not in c.text


@needs_docling
def test_xlsx_as_a_markdown_table(tmp_path):
    c = convert(str(corpus.write_xlsx(tmp_path, "a.xlsx", SECTIONS)))
    _check(c, "xlsx", True)
    assert "| Topic" in c.text and "| Penguin habits" in c.text


def test_html_without_docling(tmp_path, monkeypatch):
    monkeypatch.setattr(conv, "has_docling", lambda: False)
    c = convert(str(corpus.write_html(tmp_path, "a.html", SECTIONS, title="Field notes")))
    _check(c, "html", True)
    assert "# Field notes" in c.text and "## Volcano facts" in c.text
    assert "script text" not in c.text and "color: black" not in c.text


def test_html_to_text_details():
    t = html_to_text(
        "<html><body><h3>Title</h3><p>one <b>bold</b> <i>word</i></p>"
        "<ul><li>first</li><li>second</li></ul><p>a&amp;b</p><pre>x\n  y</pre></body></html>"
    )
    assert t == "### Title\n\none bold word\n\n- first\n\n- second\n\na&b\n\nx\ny\n"


def test_office_files_without_docling_are_skipped_naming_the_extra(tmp_path, monkeypatch):
    monkeypatch.setattr(conv, "has_docling", lambda: False)
    for fmt in ("docx", "pptx", "xlsx"):
        writer, ext = corpus.WRITERS[fmt]
        with pytest.raises(Skipped) as ei:
            convert(str(writer(tmp_path, "a" + ext, SECTIONS)))
        assert fmt.upper() in ei.value.reason and "amelia[docling]" in ei.value.reason
        assert ei.value.lasting is False  # installing docling must retry it


def test_type_comes_from_content_not_name(tmp_path):
    pdf = corpus.write_pdf(tmp_path, "really-a-pdf.md", SECTIONS)
    assert convert(str(pdf)).format == "pdf"
    txt = corpus.write_text(tmp_path, "notes.pdf", SECTIONS)
    assert convert(str(txt)).format == "text"
    html = corpus.write_html(tmp_path, "page.txt", SECTIONS)
    assert convert(str(html)).format == "html"
    elf = tmp_path / "tool.txt"
    elf.write_bytes(b"\x7fELF\x02\x01\x01" + b"\x00" * 200)
    with pytest.raises(Skipped, match=r"unsupported type \(ELF binary\)"):
        convert(str(elf))


@needs_docling
def test_misnamed_office_file(tmp_path):
    docx = corpus.write_docx(tmp_path, "report.md", SECTIONS)
    c = convert(str(docx))
    _check(c, "docx", True)


def test_sniff():
    assert sniff(b"%PDF-1.7\n", "x.txt") == "pdf"
    assert sniff(b"\n<!DOCTYPE html><html>", "x.md") == "html"
    assert sniff(b"<!-- generated -->\n<html lang=en>", "x") == "html"
    assert sniff(b"# Title\n", "x.md") == "markdown"
    assert sniff(b"# Title\n", "x.MARKDOWN") == "markdown"
    assert sniff(b"plain", "x.rst") == "text"
    assert sniff(b"\xff\xfeh\x00i\x00", "x.txt") == "text"  # UTF-16 with a BOM is text
    assert sniff(b"abc\x00def", "x.txt") == ""
    assert sniff(b"\x89PNG\r\n\x1a\n....", "x.md") == ""


def test_sniff_office_zips(tmp_path):
    for fmt in ("docx", "pptx", "xlsx"):
        writer, ext = corpus.WRITERS[fmt]
        p = writer(tmp_path, "a" + ext, SECTIONS)
        assert sniff(p.read_bytes()[:65536], "a.bin") == fmt
    plain = tmp_path / "a.zip"
    with zipfile.ZipFile(plain, "w") as z:
        z.writestr("word/readme.txt", "no content types")
    assert sniff(plain.read_bytes(), "a.docx") == ""
    with pytest.raises(Skipped, match="zip archive, not an Office document"):
        convert(str(plain))


def test_text_encodings_and_binary(tmp_path):
    latin = tmp_path / "latin.txt"
    latin.write_bytes("Café crème brûlée".encode("cp1252"))
    c = convert(str(latin))
    assert c.text == "Café crème brûlée" and "Windows-1252" in c.note
    utf16 = tmp_path / "u16.md"
    utf16.write_bytes("# Über\n\nÄpfel".encode("utf-16"))
    c = convert(str(utf16))
    assert c.format == "markdown" and c.text == "# Über\n\nÄpfel"
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes(b"a\r\nb\r\n")
    assert convert(str(crlf)).text == "a\nb\n"
    nul = tmp_path / "late-nul.txt"
    nul.write_bytes(b"text " * 20000 + b"\x00\x01\x02")  # NUL after the sniffed head
    with pytest.raises(Skipped, match="NUL bytes"):
        convert(str(nul))
    ctrl = tmp_path / "ctrl.txt"
    ctrl.write_bytes(bytes(range(1, 32)) * 50)
    with pytest.raises(Skipped, match="control characters"):
        convert(str(ctrl))


def test_over_the_cap(tmp_path):
    p = corpus.write_markdown(tmp_path, "big.md", "x " * 1000)
    with pytest.raises(Skipped) as ei:
        convert(str(p), max_bytes=1000)
    assert "over the 1000 bytes cap" in ei.value.reason and not ei.value.lasting
    assert convert(str(p), max_bytes=2000).format == "markdown"


def test_corrupt_pdf_and_docx(tmp_path):
    bad_pdf = tmp_path / "bad.pdf"
    bad_pdf.write_bytes(b"%PDF-1.4\n1 0 obj garbage\n")
    with pytest.raises(Skipped, match=r"^corrupt PDF: .*"):
        convert(str(bad_pdf))
    good = corpus.write_docx(tmp_path, "good.docx", SECTIONS).read_bytes()
    truncated = tmp_path / "truncated.docx"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(Skipped, match=r"^corrupt DOCX: damaged zip archive"):
        convert(str(truncated))
    empty_pdf = corpus.write_pdf(tmp_path, "empty.pdf", "")
    with pytest.raises(Skipped, match="without a text layer"):
        convert(str(empty_pdf))


@needs_docling
def test_corrupt_docx_content(tmp_path, capfd):
    p = tmp_path / "broken.docx"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", "<not xml")
    with pytest.raises(Skipped, match=r"^corrupt DOCX: ") as ei:
        convert(str(p))
    assert not re.search(r"[0-9a-f]{32}", ei.value.reason)  # no docling content hashes
    assert "not valid" not in capfd.readouterr().err  # docling's own warning is silenced


def test_convert_cached_converts_once(tmp_path):
    src = corpus.write_pdf(tmp_path, "a.pdf", SECTIONS)
    cache = tmp_path / "cache"
    before = conv.conversion_count()
    first = convert_cached(str(src), _sha(src), str(cache))
    assert conv.conversion_count() == before + 1
    second = convert_cached(str(src), _sha(src), str(cache))
    assert conv.conversion_count() == before + 1  # answered from the cache
    assert second == first
    files = list(cache.rglob("*.json"))
    assert len(files) == 1 and files[0].name.startswith(_sha(src))
    assert json.loads(files[0].read_text())["format"] == "pdf"
    assert not list(cache.rglob(".tmp-*"))  # atomic writes leave no temp files


def test_convert_cached_remembers_a_skip(tmp_path):
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"%PDF-1.4 broken")
    cache = str(tmp_path / "cache")
    with pytest.raises(Skipped) as first:
        convert_cached(str(bad), _sha(bad), cache)
    n = conv.conversion_count()
    with pytest.raises(Skipped) as again:
        convert_cached(str(bad), _sha(bad), cache)
    assert conv.conversion_count() == n and again.value.reason == first.value.reason
    # a changed file is a new hash: converted afresh
    corpus.write_pdf(tmp_path, "bad.pdf", SECTIONS)
    assert convert_cached(str(bad), _sha(bad), cache).format == "pdf"
    assert conv.conversion_count() == n + 1


def test_convert_cached_does_not_remember_cap_skips_or_stale_hashes(tmp_path):
    src = corpus.write_markdown(tmp_path, "a.md", SECTIONS)
    cache = tmp_path / "cache"
    with pytest.raises(Skipped, match="cap"):
        convert_cached(str(src), _sha(src), str(cache), max_bytes=10)
    assert not cache.exists() or not list(cache.rglob("*.json"))
    assert convert_cached(str(src), _sha(src), str(cache)).format == "markdown"
    # the caller's hash is of older bytes: converted, not cached under that hash
    assert convert_cached(str(src), "0" * 64, str(cache)).format == "markdown"
    assert not list(cache.rglob("0000*.json"))


def test_convert_cached_survives_a_damaged_cache_file(tmp_path):
    src = corpus.write_markdown(tmp_path, "a.md", SECTIONS)
    cache = tmp_path / "cache"
    convert_cached(str(src), _sha(src), str(cache))
    (entry,) = cache.rglob("*.json")
    entry.write_text("{not json")
    assert convert_cached(str(src), _sha(src), str(cache)).text.startswith("# Volcano facts")
