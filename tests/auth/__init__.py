"""Tests of apitokenproxy/auth/, one module each."""
