"""apitokenproxy.tokenapi."""
