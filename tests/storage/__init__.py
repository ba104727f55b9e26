"""Tests of dicomweb_origin.storage: the index and blob store contracts on every backend."""
