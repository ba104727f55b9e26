"""Tests of dicomweb_origin.retrieve: the Retrieve Transaction (PS3.18 §10.4) through the real ASGI application."""
