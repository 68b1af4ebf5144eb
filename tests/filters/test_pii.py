"""PII step: e-mails and public IPv4 addresses are replaced, everything else is left as it was."""
from __future__ import annotations

import pytest

from core.config import ConfigError, from_mapping
from transforms.filters.pii import PiiConfig, anonymize
from transforms.recipe import parse_steps
from transforms.text import TextView


def run(text: str, **cfg) -> tuple[str, dict]:
    edit = anonymize(TextView(text), PiiConfig(**cfg))
    assert edit.verdict.keep
    return edit.text, dict(edit.verdict.stats)


def test_emails_are_replaced_and_counted():
    text, stats = run("Write to jane.doe+news@mail.example.co.uk or to bob@host.org today.")
    assert text == "Write to email@example.com or to email@example.com today."
    assert stats["pii_emails_replaced"] == 2.0


def test_only_public_ips_are_replaced():
    text, stats = run("Server 8.8.8.8 and 1.1.1.1, router 192.168.0.1, local 127.0.0.1, LAN 10.0.0.7.")
    assert text == "Server 192.0.2.1 and 192.0.2.1, router 192.168.0.1, local 127.0.0.1, LAN 10.0.0.7."
    assert stats["pii_ips_replaced"] == 2.0


def test_numbers_that_are_not_addresses_stay():
    original = "Version 1.2.3.4.5 shipped; 300.1.1.1 is no address; pi is 3.14159; see section 2.1.4."
    assert run(original) == (original, {"pii_emails_replaced": 0.0, "pii_ips_replaced": 0.0})


def test_switches_and_placeholders():
    text, _ = run("a@b.io at 8.8.4.4", replace_emails=False, ip_placeholder="0.0.0.0")
    assert text == "a@b.io at 0.0.0.0"
    with pytest.raises(ConfigError, match="email_placeholder"):
        from_mapping(PiiConfig, {"email_placeholder": "nobody"}, where="pii")


def test_pii_is_a_recipe_step():
    (step,) = parse_steps([{"pii": {"replace_public_ips": False}}], where="t")
    assert step.spec.kind == "editor" and step.config.replace_public_ips is False
