"""How the console writes costs and shortens long values in messages."""

from __future__ import annotations

import pytest

from gatehouse_core.ui import format


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        (0.0000001234, "$0.00000012"),  # was "$0." (six decimals, zeros stripped)
        (0.000000004, "$0.000000004"),
        (0.000014, "$0.000014"),
        (0.005, "$0.005"),
        (0.01, "$0.01"),
        (1234.5, "$1,234.50"),
        (0, "$0"),
        (None, "—"),
    ],
)
def test_costs_keep_their_significant_digits(amount: float | None, shown: str) -> None:
    assert format.usd(amount) == shown


def test_a_huge_value_is_clipped_in_messages_keeping_start_and_end() -> None:
    message = "'" + "x" * 5000 + "' is not a valid name; use lowercase letters"
    clipped = format.clip(message)
    assert len(clipped) < 400
    assert clipped.startswith("'xxx") and clipped.endswith("use lowercase letters")
    assert "characters]" in clipped
    assert format.clip("short") == "short"
