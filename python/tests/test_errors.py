"""The exception classes are core's error kinds, each named by one rule."""

from __future__ import annotations

import re
from pathlib import Path

import courierkit
from courierkit._errors import BY_KIND

# Core is the source of the kinds: `ErrorKind::code()` in core/src/error.rs.
CORE_ERRORS = Path(__file__).resolve().parents[2] / "core" / "src" / "error.rs"


def core_kinds() -> dict[str, str]:
    """Core's kind codes, each with its `ErrorKind` variant name."""
    pairs = re.findall(r'ErrorKind::(\w+) => "(\w+)"', CORE_ERRORS.read_text())
    assert pairs, f"no kind codes found in {CORE_ERRORS}"
    return {code: variant for variant, code in pairs}


def camel(code: str) -> str:
    return "".join(part.capitalize() for part in code.split("_"))


def test_there_is_one_class_per_core_kind():
    assert sorted(BY_KIND) == sorted(core_kinds())


def test_every_class_is_named_after_its_kind_and_exported():
    for code, variant in core_kinds().items():
        assert camel(code) == variant, f"core's variant {variant} is not the camel case of {code!r}"
        cls = BY_KIND[code]
        assert cls.__name__ == f"{camel(code)}Error", code
        assert cls.kind == code
        assert issubclass(cls, courierkit.CourierError)
        assert getattr(courierkit, cls.__name__) is cls, f"courierkit.{cls.__name__}"
        assert cls.__name__ in courierkit.__all__


def test_the_old_budget_spelling_is_gone():
    assert not hasattr(courierkit, "RetryBudgetExhausted")
    assert courierkit.BudgetExhaustedError.kind == "budget_exhausted"
