"""Forward auth's pure choice of the request-target to judge."""

from __future__ import annotations

import pytest

from apitokenproxy.proxy.forwardauth import strictest_target

SUBREQUEST = "/__apitokenproxy/auth"


@pytest.mark.parametrize(
    ("targets", "judged"),
    [
        ([SUBREQUEST], SUBREQUEST),
        (["/x?a=1", SUBREQUEST], "/x?a=1"),
        (["/x?os_password=pw", SUBREQUEST], "/x?os_password=pw"),
        # A client's clean copy beside the front proxy's: the password is still seen.
        (["/x", "/x?os_password=pw", SUBREQUEST], "/x?os_password=pw"),
        (["/x?os_password=pw", "/x", SUBREQUEST], "/x?os_password=pw"),
        (["/x", "/y?os%5Fpassword=pw", SUBREQUEST], "/y?os%5Fpassword=pw"),
        # The subrequest's own query counts too, where a configuration passes one.
        (["/x", SUBREQUEST + "?os_password=pw"], SUBREQUEST + "?os_password=pw"),
    ],
)
def test_the_strictest_target_is_judged(targets: list[str], judged: str) -> None:
    assert strictest_target(targets) == judged
