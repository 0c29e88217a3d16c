"""apitokenproxy.ops."""
