"""The browser pages: "My API tokens" and the "Token manager", served by the proxy.

``site.py`` answers the page addresses: it sends a visitor who is not signed
in to the upstream's login page and back, refuses the manager to
non-administrators with a page that says so, and otherwise hands out static
HTML whose scripts (``static/*.js``) call the token API exactly as curl does,
signed in by the upstream's session cookie (``auth/sessions.py``) and
guarded by the cross-site rule (``auth/csrf.py``). No build step, nothing
loaded from the internet, no inline script.
"""
