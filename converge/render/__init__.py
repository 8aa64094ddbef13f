"""Every renderer: plans, drift reports. They decide nothing.

Each document has one function that builds it from its data, and every format of it (text with
rich markup, JSON, Markdown) comes from the same data. Secrets are masked below them, in
``converge.masking``.
"""

from converge.render.drift import (
    DRIFT_FORMAT_VERSION,
    report_document,
    report_json,
    report_markdown,
    report_text,
    status_line,
)
from converge.render.plan import (
    plan_document,
    plan_json,
    plan_markdown,
    plan_text,
    summary_line,
)

__all__ = [
    "DRIFT_FORMAT_VERSION",
    "plan_document",
    "plan_json",
    "plan_markdown",
    "plan_text",
    "report_document",
    "report_json",
    "report_markdown",
    "report_text",
    "status_line",
    "summary_line",
]
