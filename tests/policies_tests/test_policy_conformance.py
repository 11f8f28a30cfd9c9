"""Every registered policy, built-in or plugin, keeps the contract (policies/testing.py)."""

import pytest

from policies import POLICIES
from policies.testing import check_policy


@pytest.mark.parametrize("name", POLICIES.names())
def test_policy_conforms(name):
    check_policy(POLICIES.get(name))
