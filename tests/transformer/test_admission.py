"""Admission control on its own: two budgets, an immediate Overloaded beyond them, exact release."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client import REGISTRY

from contract.errors import Overloaded
from transformer.admission import EXPANSION, SERVICE_BASELINE_MB, Admission, memory_budget_mb

MIB = 1024 * 1024


def rejected(reason: str) -> float:
    return REGISTRY.get_sample_value("audioguard_admission_rejected_total", {"reason": reason}) or 0.0


def test_the_analyses_budget_refuses_at_once_with_retry_after() -> None:
    admission = Admission(max_analyses=2, max_memory_mb=10_000, retry_after_seconds=3)
    before = rejected("analyses")
    first, second = admission.admit(1000), admission.admit(1000)
    with pytest.raises(Overloaded) as caught:
        admission.admit(1000)
    assert caught.value.status_code == 503 and caught.value.retry_after_seconds == 3
    assert "retry in 3 s" in caught.value.message
    assert rejected("analyses") == before + 1
    first.release()
    third = admission.admit(1000)  # room again
    for ticket in (second, third):
        ticket.release()
    assert admission.in_flight() == (0, 0)


def test_the_memory_budget_counts_each_upload_expanded() -> None:
    admission = Admission(max_analyses=100, max_memory_mb=100, retry_after_seconds=2)
    before = rejected("memory")
    ten_mb = 10 * MIB  # costs EXPANSION x 10 MiB = 80 MiB
    held = admission.admit(ten_mb)
    assert admission.in_flight() == (1, EXPANSION * ten_mb)
    with pytest.raises(Overloaded):
        admission.admit(ten_mb)  # 160 MiB > 100 MiB
    small = admission.admit(MIB)  # 8 MiB still fits
    assert rejected("memory") == before + 1
    held.release()
    small.release()
    assert admission.in_flight() == (0, 0)


def test_a_request_larger_than_the_budget_runs_alone() -> None:
    admission = Admission(max_analyses=10, max_memory_mb=10, retry_after_seconds=2)
    alone = admission.admit(100 * MIB)  # nothing in flight: admitted
    with pytest.raises(Overloaded):
        admission.admit(1)
    alone.release()
    alone.release()  # idempotent
    assert admission.in_flight() == (0, 0)


def test_concurrent_admissions_never_exceed_the_budget() -> None:
    admission = Admission(max_analyses=3, max_memory_mb=10_000, retry_after_seconds=1)
    before = rejected("analyses")
    peak = 0
    lock = threading.Lock()
    outcomes: list[bool] = []
    refused = threading.Event()

    def one() -> None:
        nonlocal peak
        try:
            ticket = admission.admit(1000)
        except Overloaded:
            outcomes.append(False)
            refused.set()
            return
        with lock:
            peak = max(peak, admission.in_flight()[0])
        outcomes.append(True)
        refused.wait(0.5)  # hold the slot until 8 threads have contended for 3 slots
        ticket.release()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: one(), range(400)))
    assert peak <= 3
    assert outcomes.count(True) >= 3  # the budget was used in full ...
    assert outcomes.count(False) >= 1  # ... and beyond it a request was refused
    assert rejected("analyses") == before + outcomes.count(False)
    assert admission.in_flight() == (0, 0)


def test_the_default_budget_is_the_memory_limit_less_the_service() -> None:
    assert memory_budget_mb(4096) == 4096 - SERVICE_BASELINE_MB
    assert memory_budget_mb(1024) == 256.0  # never below a usable minimum
