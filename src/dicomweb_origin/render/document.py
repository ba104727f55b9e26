"""Encapsulated PDF documents: the stored PDF bytes, and a page drawn as pixels for thumbnails.

Pages are drawn by PDFium (shipped in the pypdfium2 wheel). PDFium is not thread-safe, so every
call into it holds one module lock; the server runs renderings on a thread pool.
"""

from __future__ import annotations

import threading

import numpy as np
import pypdfium2 as pdfium

from dicomweb_origin.errors import BadRequest, DecodeError

PDF_SIGNATURE = b"%PDF-"
POINTS_PER_INCH = 72
_PDFIUM = threading.Lock()


def pdf_bytes(encapsulated: bytes, length: int | None = None) -> bytes:
    """Return the PDF file held in Encapsulated Document (0042,0011), without its padding.

    PS3.3 C.24.2.1: an odd-length document is padded with a single trailing NUL to an even
    Value Length; Encapsulated Document Length (0042,0015), when present, is the length
    without that pad.
    """
    if length is not None and 0 <= length <= len(encapsulated):
        return encapsulated[:length]
    if encapsulated.endswith(b"\x00"):
        return encapsulated[:-1]
    return encapsulated


def pdf_page_count(pdf: bytes) -> int:
    """Return how many pages the PDF has."""
    with _PDFIUM:
        document = _open(pdf)
        try:
            return len(document)
        finally:
            document.close()


def pdf_page_image(pdf: bytes, page: int = 0, size: int | None = None) -> np.ndarray:
    """Draw one page (0-based) on white as an HxWx3 uint8 RGB array.

    ``size`` is the longest side in pixels (the page's aspect ratio is kept); without it the
    page is drawn at 72 dpi, one pixel per PDF point.
    """
    if size is not None and size < 1:
        raise BadRequest(f"page image size {size} is not positive")
    with _PDFIUM:
        document = _open(pdf)
        try:
            if not 0 <= page < len(document):
                raise BadRequest(f"page {page + 1} is not in the document's {len(document)} pages")
            pdf_page = document[page]
            width, height = pdf_page.get_size()
            scale = 1.0 if size is None else size / max(width, height, 1.0)
            bitmap = pdf_page.render(scale=scale, rev_byteorder=True, fill_color=(255, 255, 255, 255))
            pixels = np.array(bitmap.to_numpy(), copy=True)
        except pdfium.PdfiumError as error:
            raise DecodeError(f"PDF page {page + 1} cannot be drawn: {error}") from error
        finally:
            document.close()
    return np.ascontiguousarray(pixels[..., :3])


def _open(pdf: bytes) -> pdfium.PdfDocument:
    """Open the PDF with PDFium, or say that the stored document is not one."""
    if PDF_SIGNATURE not in pdf[:1024]:  # ISO 32000-1 §7.5.2: the header may follow junk
        raise DecodeError("the encapsulated document is not a PDF (no %PDF- header)")
    try:
        return pdfium.PdfDocument(pdf)
    except pdfium.PdfiumError as error:
        raise DecodeError(f"the PDF cannot be opened: {error}") from error
