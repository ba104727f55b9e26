"""Storage seams: an index of records and a blob store of bytes. No pydicom here."""
