"""Tests of dicomweb_origin.render.volume: assembly, cameras, MPR and projections (PS3.18 §8.3.5.3)."""
