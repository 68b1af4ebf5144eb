"""PII switches one at a time (issue 16 mutation survivor): with public-IP replacement off, addresses stay."""
from __future__ import annotations

import pytest

from transforms.filters.pii import PiiConfig, anonymize
from transforms.text import TextView

TEXT = "Mail bob@host.org from 8.8.8.8 or 1.1.1.1 today."


def test_ip_replacement_off_leaves_public_addresses_and_counts_none() -> None:
    edit = anonymize(TextView(TEXT), PiiConfig(replace_public_ips=False))
    assert edit.text == "Mail email@example.com from 8.8.8.8 or 1.1.1.1 today."
    assert dict(edit.verdict.stats) == {"pii_emails_replaced": 1.0, "pii_ips_replaced": 0.0}


def test_both_switches_off_change_nothing() -> None:
    edit = anonymize(TextView(TEXT), PiiConfig(replace_emails=False, replace_public_ips=False))
    assert edit.text == TEXT
    assert dict(edit.verdict.stats) == {"pii_emails_replaced": 0.0, "pii_ips_replaced": 0.0}


def test_email_replacement_off_still_replaces_public_addresses() -> None:
    edit = anonymize(TextView(TEXT), PiiConfig(replace_emails=False))
    assert edit.text == "Mail bob@host.org from 192.0.2.1 or 192.0.2.1 today."
    assert dict(edit.verdict.stats) == {"pii_emails_replaced": 0.0, "pii_ips_replaced": 2.0}


def test_a_public_address_at_the_end_of_a_sentence_is_replaced() -> None:
    """Found by these tests: the lookahead refused any following dot, so '... is 8.8.8.8.' kept the address."""
    edit = anonymize(TextView("The server is 8.8.8.8."), PiiConfig())
    assert edit.text == "The server is 192.0.2.1."
