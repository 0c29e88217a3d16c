"""The data path: every request that is not the token API, forwarded with a trusted user.

    fastlane.py     plain HTTP/1.1 requests, parsed by llhttp below aiohttp
    forwarder.py    everything else (uploads, WebSockets, Expect), through aiohttp
    forwardauth.py  the same decision, answered to a front proxy's subrequest
    client.py       who the client is (trusted proxies, X-Forwarded-*)
    headers.py      which headers cross, and the identity the proxy injects
    framing.py      what the proxy writes on the wire: heads, lengths, chunks
    upstream.py     the one pool of upstream connections both lanes send through

Both lanes ask the same ``auth.gate.Gate`` who the caller is, rewrite headers
with the same ``headers.Injection`` and write through the same
``UpstreamPool``; they differ only in how the client's side of the
connection is read.
"""
