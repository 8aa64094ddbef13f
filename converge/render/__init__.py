"""Every renderer: plans, apply results and progress, drift reports, status, metrics.

Renderers decide nothing. Each document has one function that builds it from its data, and
every format of it (text with rich markup, JSON, Markdown) comes from the same data. Secrets are
masked below them, in ``converge.masking``.
"""

from converge.render.apply import (
    APPLY_FORMAT_VERSION,
    apply_document,
    apply_json,
    apply_summary_line,
)
from converge.render.drift import (
    DRIFT_FORMAT_VERSION,
    report_document,
    report_json,
    report_markdown,
    report_text,
    status_line,
)
from converge.render.errors import error_document, error_json, plan_errors_json
from converge.render.metrics import failure_metrics, report_metrics, write_metrics
from converge.render.plan import (
    plan_document,
    plan_from_document,
    plan_json,
    plan_markdown,
    plan_text,
    summary_line,
    targeting_warning,
)
from converge.render.progress import ProgressReporter
from converge.render.status import (
    STATUS_FORMAT_VERSION,
    status_document,
    status_json,
    status_text,
)

__all__ = [
    "APPLY_FORMAT_VERSION",
    "DRIFT_FORMAT_VERSION",
    "STATUS_FORMAT_VERSION",
    "ProgressReporter",
    "apply_document",
    "apply_json",
    "apply_summary_line",
    "error_document",
    "error_json",
    "failure_metrics",
    "plan_document",
    "plan_errors_json",
    "plan_from_document",
    "plan_json",
    "plan_markdown",
    "plan_text",
    "report_document",
    "report_json",
    "report_markdown",
    "report_metrics",
    "report_text",
    "status_document",
    "status_json",
    "status_line",
    "status_text",
    "summary_line",
    "targeting_warning",
    "write_metrics",
]
