"""Entry points, one module per job: python -m pipelines.<job>."""
import logging


class _DropApitoolsNotice(logging.Filter):
    """Beam logs "apitools not found" on every import when the GCP extra is absent; for local runs it is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "apitools not found" not in record.getMessage()


logging.getLogger().addFilter(_DropApitoolsNotice())
