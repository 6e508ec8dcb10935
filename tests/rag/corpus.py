"""Test documents of each type, built with the standard library only.

Each write_* function takes a directory, a file name and either a text (paragraphs
separated by blank lines) or sections [(heading, body), ...], writes a real file of that
type and returns its Path. The Office files are minimal hand-built OOXML zips and the PDF a
hand-written one with a text stream: valid enough for docling, python-docx/pptx, openpyxl
and pdfium, so tests need neither python-docx nor reportlab to make them.

Import as `from rag import corpus` (tests/ is on sys.path; see tests/fakes/__init__.py).
WRITERS maps a format to (writer, suffix).
"""

from __future__ import annotations

import html
import textwrap
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

Content = "str | list[tuple[str, str]]"


def _sections(content) -> list[tuple[str, str]]:
    """(heading, body) pairs; a plain text is one section without a heading."""
    if isinstance(content, str):
        return [("", content)]
    return [(h, b) for h, b in content]


def _paragraphs(body: str) -> list[str]:
    return [" ".join(p.split()) for p in body.split("\n\n") if p.strip()]


def _target(dir, name: str) -> Path:
    p = Path(dir) / name
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


def write_markdown(dir, name: str, content) -> Path:
    out = []
    for h, b in _sections(content):
        if h:
            out.append(f"# {h}\n")
        out.extend(p + "\n" for p in _paragraphs(b))
    p = _target(dir, name)
    p.write_text("\n".join(out), encoding="utf-8")
    return p


def write_text(dir, name: str, content) -> Path:
    out = []
    for h, b in _sections(content):
        if h:
            out.append(h + "\n")
        out.extend(p + "\n" for p in _paragraphs(b))
    p = _target(dir, name)
    p.write_text("\n".join(out), encoding="utf-8")
    return p


def write_html(dir, name: str, content, title: str = "Test page") -> Path:
    body = []
    for h, b in _sections(content):
        if h:
            body.append(f"<h2>{html.escape(h)}</h2>")
        body.extend(f"<p>{html.escape(p)}</p>" for p in _paragraphs(b))
    doc = (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>"
        f"{html.escape(title)}</title><style>p {{ color: black; }}</style>"
        "<script>var hidden = 'script text must not be indexed';</script></head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n" + "\n".join(body) + "\n</body></html>\n"
    )
    p = _target(dir, name)
    p.write_text(doc, encoding="utf-8")
    return p


# ---- OOXML ------------------------------------------------------------------------------

_RELS_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
_OFFDOC = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"
_R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_XML = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'


def _content_types(overrides: dict[str, str]) -> str:
    parts = "".join(f'<Override PartName="{k}" ContentType="{v}"/>' for k, v in overrides.items())
    return (
        _XML + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>' + parts + "</Types>"
    )


def _rels(rels: list[tuple[str, str, str]]) -> str:
    items = "".join(f'<Relationship Id="{i}" Type="{t}" Target="{tg}"/>' for i, t, tg in rels)
    return _XML + f'<Relationships xmlns="{_RELS_NS}">{items}</Relationships>'


def _zip(path: Path, members: dict[str, str]) -> Path:
    # [Content_Types].xml first, as Office writes it (sniffers look there)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def write_docx(dir, name: str, content) -> Path:
    paras = []
    for h, b in _sections(content):
        if h:
            paras.append(
                f'<w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr><w:r><w:t xml:space="preserve">{escape(h)}</w:t></w:r></w:p>'
            )
        paras.extend(f'<w:p><w:r><w:t xml:space="preserve">{escape(p)}</w:t></w:r></w:p>' for p in _paragraphs(b))
    document = _XML + f'<w:document xmlns:w="{_W}" xmlns:r="{_R}"><w:body>{"".join(paras)}<w:sectPr/></w:body></w:document>'
    styles = (
        _XML + f'<w:styles xmlns:w="{_W}">'
        '<w:style w:type="paragraph" w:default="1" w:styleId="Normal"><w:name w:val="Normal"/></w:style>'
        '<w:style w:type="paragraph" w:styleId="Heading1"><w:name w:val="heading 1"/>'
        '<w:basedOn w:val="Normal"/><w:pPr><w:outlineLvl w:val="0"/></w:pPr></w:style></w:styles>'
    )
    wml = "application/vnd.openxmlformats-officedocument.wordprocessingml"
    return _zip(
        _target(dir, name),
        {
            "[Content_Types].xml": _content_types(
                {"/word/document.xml": f"{wml}.document.main+xml", "/word/styles.xml": f"{wml}.styles+xml"}
            ),
            "_rels/.rels": _rels([("rId1", _OFFDOC, "word/document.xml")]),
            "word/_rels/document.xml.rels": _rels([("rId1", f"{_R}/styles", "styles.xml")]),
            "word/document.xml": document,
            "word/styles.xml": styles,
        },
    )


_P = "http://schemas.openxmlformats.org/presentationml/2006/main"
_A = "http://schemas.openxmlformats.org/drawingml/2006/main"
_NS = f'xmlns:a="{_A}" xmlns:r="{_R}" xmlns:p="{_P}"'
_EMPTY_TREE = (
    '<p:nvGrpSpPr><p:cNvPr id="1" name=""/><p:cNvGrpSpPr/><p:nvPr/></p:nvGrpSpPr>'
    '<p:grpSpPr><a:xfrm><a:off x="0" y="0"/><a:ext cx="0" cy="0"/><a:chOff x="0" y="0"/>'
    '<a:chExt cx="0" cy="0"/></a:xfrm></p:grpSpPr>'
)


def _shape(id: int, name: str, paragraphs: list[str], y: int, title: bool) -> str:
    ph = '<p:ph type="title"/>' if title else ""
    text = "".join(f"<a:p><a:r><a:rPr lang=\"en-US\"/><a:t>{escape(p)}</a:t></a:r></a:p>" for p in paragraphs)
    return (
        f'<p:sp><p:nvSpPr><p:cNvPr id="{id}" name="{name}"/><p:cNvSpPr txBox="{0 if title else 1}"/>'
        f"<p:nvPr>{ph}</p:nvPr></p:nvSpPr>"
        f'<p:spPr><a:xfrm><a:off x="457200" y="{y}"/><a:ext cx="8229600" cy="1143000"/></a:xfrm>'
        '<a:prstGeom prst="rect"><a:avLst/></a:prstGeom></p:spPr>'
        f'<p:txBody><a:bodyPr/><a:lstStyle/>{text}</p:txBody></p:sp>'
    )


def write_pptx(dir, name: str, content) -> Path:
    """One slide per section: the heading as the title, the paragraphs in a text box."""
    pml = "application/vnd.openxmlformats-officedocument.presentationml"
    sections = _sections(content)
    members: dict[str, str] = {}
    overrides = {
        "/ppt/presentation.xml": f"{pml}.presentation.main+xml",
        "/ppt/slideMasters/slideMaster1.xml": f"{pml}.slideMaster+xml",
        "/ppt/slideLayouts/slideLayout1.xml": f"{pml}.slideLayout+xml",
        "/ppt/theme/theme1.xml": "application/vnd.openxmlformats-officedocument.theme+xml",
    }
    slide_ids, pres_rels = [], [
        ("rId1", f"{_R}/slideMaster", "slideMasters/slideMaster1.xml"),
        ("rId2", f"{_R}/theme", "theme/theme1.xml"),
    ]
    slides = {}
    for i, (h, b) in enumerate(sections, start=1):
        shapes = []
        if h:
            shapes.append(_shape(2, "Title 1", [h], 274638, True))
        shapes.append(_shape(3, "TextBox 2", _paragraphs(b), 1600200, False))
        slides[f"ppt/slides/slide{i}.xml"] = (
            _XML + f"<p:sld {_NS}><p:cSld><p:spTree>{_EMPTY_TREE}{''.join(shapes)}</p:spTree></p:cSld></p:sld>"
        )
        slides[f"ppt/slides/_rels/slide{i}.xml.rels"] = _rels(
            [("rId1", f"{_R}/slideLayout", "../slideLayouts/slideLayout1.xml")]
        )
        overrides[f"/ppt/slides/slide{i}.xml"] = f"{pml}.slide+xml"
        slide_ids.append(f'<p:sldId id="{255 + i}" r:id="rId{10 + i}"/>')
        pres_rels.append((f"rId{10 + i}", f"{_R}/slide", f"slides/slide{i}.xml"))
    members["[Content_Types].xml"] = _content_types(overrides)
    members["_rels/.rels"] = _rels([("rId1", _OFFDOC, "ppt/presentation.xml")])
    members["ppt/presentation.xml"] = (
        _XML + f"<p:presentation {_NS}>"
        '<p:sldMasterIdLst><p:sldMasterId id="2147483648" r:id="rId1"/></p:sldMasterIdLst>'
        f"<p:sldIdLst>{''.join(slide_ids)}</p:sldIdLst>"
        '<p:sldSz cx="9144000" cy="6858000"/><p:notesSz cx="6858000" cy="9144000"/></p:presentation>'
    )
    members["ppt/_rels/presentation.xml.rels"] = _rels(pres_rels)
    members["ppt/slideMasters/slideMaster1.xml"] = (
        _XML + f"<p:sldMaster {_NS}><p:cSld><p:spTree>{_EMPTY_TREE}</p:spTree></p:cSld>"
        '<p:clrMap bg1="lt1" tx1="dk1" bg2="lt2" tx2="dk2" accent1="accent1" accent2="accent2" '
        'accent3="accent3" accent4="accent4" accent5="accent5" accent6="accent6" hlink="hlink" folHlink="folHlink"/>'
        '<p:sldLayoutIdLst><p:sldLayoutId id="2147483649" r:id="rId1"/></p:sldLayoutIdLst></p:sldMaster>'
    )
    members["ppt/slideMasters/_rels/slideMaster1.xml.rels"] = _rels(
        [("rId1", f"{_R}/slideLayout", "../slideLayouts/slideLayout1.xml"), ("rId2", f"{_R}/theme", "../theme/theme1.xml")]
    )
    members["ppt/slideLayouts/slideLayout1.xml"] = (
        _XML + f'<p:sldLayout {_NS} type="blank"><p:cSld name="Blank"><p:spTree>{_EMPTY_TREE}</p:spTree></p:cSld></p:sldLayout>'
    )
    members["ppt/slideLayouts/_rels/slideLayout1.xml.rels"] = _rels(
        [("rId1", f"{_R}/slideMaster", "../slideMasters/slideMaster1.xml")]
    )
    members["ppt/theme/theme1.xml"] = _THEME
    members.update(slides)
    return _zip(_target(dir, name), members)


def _scheme_colors() -> str:
    sys_ = '<a:{0}><a:sysClr val="{1}" lastClr="{2}"/></a:{0}>'
    srgb = '<a:{0}><a:srgbClr val="{1}"/></a:{0}>'
    return (
        sys_.format("dk1", "windowText", "000000")
        + sys_.format("lt1", "window", "FFFFFF")
        + srgb.format("dk2", "1F497D")
        + srgb.format("lt2", "EEECE1")
        + "".join(srgb.format(f"accent{i}", "4F81BD") for i in range(1, 7))
        + srgb.format("hlink", "0000FF")
        + srgb.format("folHlink", "800080")
    )


_FILL = '<a:solidFill><a:schemeClr val="phClr"/></a:solidFill>'
_LN = f'<a:ln w="9525">{_FILL}</a:ln>'
_THEME = (
    _XML + f'<a:theme xmlns:a="{_A}" name="Office Theme"><a:themeElements>'
    f'<a:clrScheme name="Office">{_scheme_colors()}</a:clrScheme>'
    '<a:fontScheme name="Office"><a:majorFont><a:latin typeface="Calibri"/><a:ea typeface=""/><a:cs typeface=""/>'
    '</a:majorFont><a:minorFont><a:latin typeface="Calibri"/><a:ea typeface=""/><a:cs typeface=""/></a:minorFont></a:fontScheme>'
    f'<a:fmtScheme name="Office"><a:fillStyleLst>{_FILL * 3}</a:fillStyleLst><a:lnStyleLst>{_LN * 3}</a:lnStyleLst>'
    "<a:effectStyleLst>" + "<a:effectStyle><a:effectLst/></a:effectStyle>" * 3 + "</a:effectStyleLst>"
    f"<a:bgFillStyleLst>{_FILL * 3}</a:bgFillStyleLst></a:fmtScheme></a:themeElements></a:theme>"
)


_S = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"


def write_xlsx(dir, name: str, content, sheet: str = "Sheet1") -> Path:
    """A sheet with a header row (Topic, Text) and one row per paragraph: the section's
    heading in column A, the paragraph in column B. Inline strings: no shared-strings part."""
    rows = [("Topic", "Text")]
    for h, b in _sections(content):
        rows.extend((h, p) for p in _paragraphs(b))

    def cell(ref: str, v: str) -> str:
        return f'<c r="{ref}" t="inlineStr"><is><t xml:space="preserve">{escape(v)}</t></is></c>'

    xml_rows = "".join(
        f'<row r="{r}">{cell(f"A{r}", a)}{cell(f"B{r}", b)}</row>' for r, (a, b) in enumerate(rows, start=1)
    )
    sml = "application/vnd.openxmlformats-officedocument.spreadsheetml"
    return _zip(
        _target(dir, name),
        {
            "[Content_Types].xml": _content_types(
                {"/xl/workbook.xml": f"{sml}.sheet.main+xml", "/xl/worksheets/sheet1.xml": f"{sml}.worksheet+xml"}
            ),
            "_rels/.rels": _rels([("rId1", _OFFDOC, "xl/workbook.xml")]),
            "xl/workbook.xml": _XML + f'<workbook xmlns="{_S}" xmlns:r="{_R}"><sheets>'
            f'<sheet name="{escape(sheet)}" sheetId="1" r:id="rId1"/></sheets></workbook>',
            "xl/_rels/workbook.xml.rels": _rels([("rId1", f"{_R}/worksheet", "worksheets/sheet1.xml")]),
            "xl/worksheets/sheet1.xml": _XML + f'<worksheet xmlns="{_S}"><sheetData>{xml_rows}</sheetData></worksheet>',
        },
    )


# ---- PDF --------------------------------------------------------------------------------


def _pdf_string(s: str) -> str:
    s = s.encode("latin-1", "replace").decode("latin-1")
    return "(" + s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def write_pdf(dir, name: str, content, lines_per_page: int = 45) -> Path:
    """A PDF with Helvetica text streams (headings in bold), wrapped at 80 characters,
    45 lines a page. Latin-1 text only (the standard fonts' encoding)."""
    lines: list[tuple[str, bool]] = []
    for h, b in _sections(content):
        if h:
            lines += [(h, True), ("", False)]
        for p in _paragraphs(b):
            lines += [(w, False) for w in textwrap.wrap(p, 80)] + [("", False)]
    pages = [lines[i : i + lines_per_page] for i in range(0, max(len(lines), 1), lines_per_page)] or [[]]

    objs: list[bytes] = []  # object n is objs[n-1]

    def add(body: str | bytes) -> int:
        objs.append(body.encode("latin-1") if isinstance(body, str) else body)
        return len(objs)

    catalog = add("")  # placeholders, filled once the page ids are known
    pages_id = add("")
    font = add("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    bold = add("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>")
    page_ids = []
    for page in pages:
        ops = ["BT", "14 TL", "72 760 Td"]
        for text, is_heading in page:
            ops.append(f"/{'F2 14' if is_heading else 'F1 11'} Tf {_pdf_string(text)} Tj T*")
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1", "replace")
        content_id = add(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        page_ids.append(
            add(
                f"<< /Type /Page /Parent {pages_id} 0 R /MediaBox [0 0 612 792] "
                f"/Resources << /Font << /F1 {font} 0 R /F2 {bold} 0 R >> >> /Contents {content_id} 0 R >>"
            )
        )
    objs[catalog - 1] = f"<< /Type /Catalog /Pages {pages_id} 0 R >>".encode()
    kids = " ".join(f"{i} 0 R" for i in page_ids)
    objs[pages_id - 1] = f"<< /Type /Pages /Kids [{kids}] /Count {len(page_ids)} >>".encode()

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for n, body in enumerate(objs, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, catalog, xref)
    p = _target(dir, name)
    p.write_bytes(bytes(out))
    return p


WRITERS = {
    "markdown": (write_markdown, ".md"),
    "text": (write_text, ".txt"),
    "html": (write_html, ".html"),
    "docx": (write_docx, ".docx"),
    "pptx": (write_pptx, ".pptx"),
    "xlsx": (write_xlsx, ".xlsx"),
    "pdf": (write_pdf, ".pdf"),
}
