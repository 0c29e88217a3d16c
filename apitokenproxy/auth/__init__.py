"""apitokenproxy.auth."""
