"""Tests of dicomweb_origin.render: rendered images (PS3.18 §8.3.5) from decoded pixels, without HTTP."""
