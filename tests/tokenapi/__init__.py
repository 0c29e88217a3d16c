"""Tests of apitokenproxy/tokenapi/, one module each."""
