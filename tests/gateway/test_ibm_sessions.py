"""IBM's `/api/v1/sessions` as a careless or hostile caller uses it: the times a session asks
for are bounded by the operator's settings."""

from __future__ import annotations

from .conftest import MakeGateway
from .test_ibm_api import ibm


async def test_a_session_cannot_ask_to_hold_its_device_longer_than_the_operator_allows(
    make_gateway: MakeGateway,
):
    gw = await make_gateway(session_max_interactive_ttl=120, session_max_ttl=3600)
    greedy = {"mode": "dedicated", "backend": "aer_simulator", "interactive_ttl": 99999999,
              "max_ttl": 99999999}  # fmt: skip
    made = await ibm(gw, "POST", "/sessions", json=greedy)
    assert (made["interactive_ttl"], made["max_ttl"]) == (120, 3600)
    stored = await gw.gateway.store.get_session(made["id"])
    assert stored is not None and stored.interactive_ttl == 120  # what the scheduler reads
    plain = await ibm(
        gw, "POST", "/sessions", json={"mode": "dedicated", "backend": "aer_simulator"}
    )
    assert (plain["interactive_ttl"], plain["max_ttl"]) == (60, 3600)
    # The default interactive TTL never exceeds the bound either.
    tight = await make_gateway(session_max_interactive_ttl=5)
    made = await ibm(tight, "POST", "/sessions", json={"mode": "batch", "backend": "aer_simulator"})
    assert made["interactive_ttl"] == 5
