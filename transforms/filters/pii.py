"""PII anonymisation as FineWeb did it: e-mail addresses and public IP addresses replaced in the text.

FineWeb (Penedo et al. 2024, §3.4; data-seeds.md §3.2) replaced e-mails and public IPs with placeholders
after dedup. We replace each with one fixed placeholder per kind, so the text keeps its shape, and count what
was replaced; private, loopback and reserved addresses (version strings, LAN examples) stay as they are.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from transforms.filters.base import Edit, StepSpec, Verdict
from transforms.text import TextView

# Local part and domain as common mail validators accept them; a dot-separated TLD of 2+ letters is required.
_EMAIL_RE = re.compile(r"\b[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}\b")
# Four dotted decimal octets not glued to other digits or dots (so "1.2.3.4.5" and version strings are left).
_IPV4_RE = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?!\.?\d)")  # a full stop may follow; a fifth octet may not


@dataclass(frozen=True, kw_only=True, slots=True)
class PiiConfig:
    """What is replaced and with what."""

    replace_emails: bool = True  # FineWeb §3.4
    replace_public_ips: bool = True  # FineWeb §3.4: only globally routable addresses
    email_placeholder: str = "email@example.com"  # RFC 2606 reserved domain, never a real inbox
    ip_placeholder: str = "192.0.2.1"  # RFC 5737 documentation range (TEST-NET-1), never a real host

    def __post_init__(self) -> None:
        if _EMAIL_RE.fullmatch(self.email_placeholder) is None:
            raise ValueError(f"email_placeholder ({self.email_placeholder!r}) must itself look like an e-mail address")


def _public_ip(match: re.Match[str]) -> bool:
    try:
        return ipaddress.IPv4Address(match.group(0)).is_global
    except ipaddress.AddressValueError:  # an octet above 255: not an address
        return False


def anonymize(view: TextView, cfg: PiiConfig) -> Edit:
    """Replace e-mails and public IPv4 addresses; never drops a document."""
    text, n_emails, n_ips = view.text, 0, 0
    if cfg.replace_emails and "@" in text:
        text, n_emails = _EMAIL_RE.subn(cfg.email_placeholder, text)
    if cfg.replace_public_ips and "." in text:
        def swap(m: re.Match[str]) -> str:
            nonlocal n_ips
            if not _public_ip(m):
                return m.group(0)
            n_ips += 1
            return cfg.ip_placeholder

        text = _IPV4_RE.sub(swap, text)
    return Edit(text, Verdict(None, {"pii_emails_replaced": float(n_emails), "pii_ips_replaced": float(n_ips)}))


STEPS = (
    StepSpec(name="pii", kind="editor", fn=anonymize, config_cls=PiiConfig,
             stat_names=("pii_emails_replaced", "pii_ips_replaced"), reasons=()),
)
EVIDENCE: dict = {}  # PII replacement never drops a document
NOTES: dict[str, str] = {}
# Stats that count replacements, and the name their totals carry under the stage's `edited` in the report.
EDIT_TOTALS = {"pii_emails_replaced": "pii.email", "pii_ips_replaced": "pii.ip"}
