"""The tests of dicomweb-origin: folders mirror src/dicomweb_origin; e2e* start real processes."""
