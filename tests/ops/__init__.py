"""Tests of apitokenproxy/ops/."""
