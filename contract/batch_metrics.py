"""The three Prometheus histograms of one adaptive batcher (``contract.batching``).

Both services batch (the predictor's classifier calls, the transformer's VGGish
calls) and report them the same way: rows per call, request chunks per call,
seconds per call, labelled by the served model's name. ``_count`` is the
number of calls; mean requests per call above 1 means requests were merged.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import Histogram

_REQUEST_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 32, 64)


class BatchMetrics:
    """``{prefix}_batch_{rows}``, ``{prefix}_batch_requests`` and ``{prefix}_batch_seconds``."""

    def __init__(
        self,
        prefix: str,
        *,
        rows: str,
        rows_help: str,
        calls_help: str,
        row_buckets: Sequence[float],
        second_buckets: Sequence[float] | None = None,
    ) -> None:
        """
        Args:
            prefix: metric name prefix, e.g. ``audioguard_predictor``.
            rows: what a row is, in the metric name (``windows``, ``examples``).
            rows_help, calls_help: help texts of the rows and seconds histograms.
            row_buckets: buckets of the rows histogram.
            second_buckets: buckets of the seconds histogram (prometheus' default if None).
        """
        self.rows = Histogram(f"{prefix}_batch_{rows}", rows_help, ["model_name"], buckets=row_buckets)
        self.requests = Histogram(
            f"{prefix}_batch_requests",
            "Request chunks merged into one call.",
            ["model_name"],
            buckets=_REQUEST_BUCKETS,
        )
        self.seconds = Histogram(
            f"{prefix}_batch_seconds",
            calls_help,
            ["model_name"],
            buckets=Histogram.DEFAULT_BUCKETS if second_buckets is None else second_buckets,
        )

    def observe(self, model_name: str, rows: int, requests: int, seconds: float) -> None:
        """Record one call of ``rows`` rows serving ``requests`` request chunks (a ``BatchObserver``)."""
        self.rows.labels(model_name=model_name).observe(rows)
        self.requests.labels(model_name=model_name).observe(requests)
        self.seconds.labels(model_name=model_name).observe(seconds)
