"""Tests of the data path: one module each, as in apitokenproxy/proxy/."""
