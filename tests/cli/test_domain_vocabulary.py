"""One vocabulary: the CLI's choices, the store's records and the scheduler's states are the
domain's (cloudctl/domain.py), so no layer knows a state the others do not."""

from __future__ import annotations

from cli_harness import Cli

from cloudctl.domain import (
    FINAL_STATES,
    LISTED_STATES,
    RUNNING_STATES,
    SUSPENDED_STATES,
    TRANSITIONS,
    LeaseState,
    VMStatus,
)


def test_every_state_a_lease_can_be_seen_in_can_be_listed(cli: Cli) -> None:
    for state in LeaseState:
        if state is LeaseState.NEW:  # lasts only inside one decision
            result = cli("lease", "list", "--state", state.value, "--json", code=2)
            assert "unknown state 'new'" in result.stderr
        else:
            assert cli.json("lease", "list", "--state", state.value) == []
    assert "preparing" in LISTED_STATES and "resumed-ready" in LISTED_STATES


def test_the_state_groups_partition_the_live_states() -> None:
    live = {s for s in LeaseState if not s.final}
    assert not RUNNING_STATES & SUSPENDED_STATES
    assert RUNNING_STATES | SUSPENDED_STATES <= live
    for final in FINAL_STATES:
        assert final not in TRANSITIONS  # nothing leaves a final state
    for state in live - {LeaseState.NEW}:
        assert {LeaseState.CANCELLED, LeaseState.FAIL} <= TRANSITIONS[state]


def test_vm_states_read_and_write_as_the_store_keeps_them() -> None:
    assert VMStatus.RUNNING == "running" and f"{VMStatus.GONE}" == "gone"
    assert "suspended" in {VMStatus.SUSPENDED} and str(VMStatus.PENDING) == "pending"
