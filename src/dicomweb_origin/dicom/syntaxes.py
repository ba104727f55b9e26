"""The compressed transfer syntaxes (PS3.5 Annex A) by pydicom's UIDs, under the short names the dicom layer uses.

pydicom names every transfer syntax (``pydicom.uid``); this module gives the dicom layer its short names for them,
so that no module of the package writes a UID of its own (``tests/model/test_media.py`` checks it).
"""

from pydicom.uid import HTJ2K
from pydicom.uid import JPEG2000 as J2K
from pydicom.uid import JPEG2000MC as J2K_PART2
from pydicom.uid import HTJ2KLossless as HTJ2K_LOSSLESS
from pydicom.uid import HTJ2KLosslessRPCL as HTJ2K_RPCL
from pydicom.uid import JPEG2000Lossless as J2K_LOSSLESS
from pydicom.uid import JPEG2000MCLossless as J2K_PART2_LOSSLESS
from pydicom.uid import JPEGBaseline8Bit as JPEG_BASELINE
from pydicom.uid import JPEGExtended12Bit as JPEG_EXTENDED
from pydicom.uid import JPEGLossless as JPEG_LOSSLESS
from pydicom.uid import JPEGLosslessSV1 as JPEG_LOSSLESS_SV1
from pydicom.uid import JPEGLSLossless as JPEG_LS_LOSSLESS
from pydicom.uid import JPEGLSNearLossless as JPEG_LS_NEAR
from pydicom.uid import RLELossless as RLE_LOSSLESS

__all__ = [
    "HTJ2K",
    "HTJ2K_LOSSLESS",
    "HTJ2K_RPCL",
    "J2K",
    "J2K_LOSSLESS",
    "J2K_PART2",
    "J2K_PART2_LOSSLESS",
    "JPEG_BASELINE",
    "JPEG_EXTENDED",
    "JPEG_LOSSLESS",
    "JPEG_LOSSLESS_SV1",
    "JPEG_LS_LOSSLESS",
    "JPEG_LS_NEAR",
    "RLE_LOSSLESS",
]
