"""dicomweb-origin: a DICOMweb origin server (PS3.18) over an embedded or shared archive."""
