"""DICOM itself, with pydicom and numpy: reading files once at ingest, metadata, pixels, codecs, transcoding."""
