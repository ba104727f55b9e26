"""Tests of dicomweb_origin.web: the HTTP layer through the real ASGI application."""
