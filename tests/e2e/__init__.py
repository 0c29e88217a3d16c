"""End to end: the whole server, over real sockets, on both lanes and both stores."""
