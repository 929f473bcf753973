"""The names written out in im_common.rpc_names are the generated service's."""

from __future__ import annotations

from im_common.rpc_names import BATCH_STREAM, SERVICE
from improto import ImServiceBase


def test_the_batch_stream_route_is_a_route_of_the_generated_service() -> None:
    routes = ImServiceBase().__mapping__()
    assert BATCH_STREAM in routes
    assert {route.split("/")[1] for route in routes} == {SERVICE}
