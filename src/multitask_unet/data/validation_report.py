"""Problems found in a dataset: :class:`Issue` and the :class:`ValidationReport` that collects them.

Readers record the problems they can see from file names alone (a missing mask, a duplicate case
id, a label that contradicts its folder); :func:`multitask_unet.data.validation.validate_dataset`
adds those it finds by opening the files. Each issue names the file, what is wrong and the fix.

Example:
    >>> report = ValidationReport((Issue("error", "mask missing", "add it", file=Path("a.nii.gz")),))
    >>> report.ok, len(report.errors)
    (False, 1)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from multitask_unet.errors import DataError

__all__ = ["Issue", "Severity", "ValidationReport"]

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Issue:
    """One problem in a dataset.

    Attributes:
        severity: ``"error"`` (the data cannot be used as it is) or ``"warning"`` (it can, with
            the stated consequence, e.g. labels rounded to integers).
        message: What is wrong, with the offending value.
        fix: What to do about it.
        file: The file or folder concerned, if any.
        case_id: The case concerned, if any.
    """

    severity: Severity
    message: str
    fix: str
    file: Path | None = None
    case_id: str | None = None

    def __post_init__(self) -> None:
        if self.severity not in ("error", "warning"):
            raise DataError(f"severity must be 'error' or 'warning', got {self.severity!r}")

    def __str__(self) -> str:
        where = str(self.file) if self.file is not None else (self.case_id or "dataset")
        return f"{self.severity.upper()} {where}: {self.message}\n    fix: {self.fix}"

    def to_dict(self) -> dict[str, str | None]:
        """JSON-ready form."""
        return {
            "severity": self.severity,
            "file": str(self.file) if self.file is not None else None,
            "case_id": self.case_id,
            "message": self.message,
            "fix": self.fix,
        }


@dataclass(frozen=True)
class ValidationReport:
    """Every issue found in one pass over a dataset.

    Attributes:
        issues: Errors and warnings, in the order they were found (per case, then dataset-wide).
        root: The dataset root that was checked.
        n_cases: How many cases were checked.
        n_files: How many files were opened.
    """

    issues: tuple[Issue, ...] = ()
    root: Path | None = None
    n_cases: int = 0
    n_files: int = 0
    seconds: float = field(default=0.0, compare=False)

    @property
    def errors(self) -> tuple[Issue, ...]:
        """Issues that make the data unusable as it is."""
        return tuple(i for i in self.issues if i.severity == "error")

    @property
    def warnings(self) -> tuple[Issue, ...]:
        """Issues the pipeline handles, listed so that nothing happens silently."""
        return tuple(i for i in self.issues if i.severity == "warning")

    @property
    def ok(self) -> bool:
        """``True`` when there is no error (warnings allowed)."""
        return not self.errors

    def raise_if_errors(self) -> None:
        """Raise :class:`~multitask_unet.errors.DataError` listing every error, if any."""
        if self.errors:
            listed = "\n".join(str(i) for i in self.errors)
            raise DataError(f"{len(self.errors)} problem(s) in {self.root}:\n{listed}")

    def summary(self) -> str:
        """One line: cases, files, errors, warnings, time."""
        return (
            f"{self.n_cases} cases, {self.n_files} files checked in {self.seconds:.1f} s: "
            f"{len(self.errors)} error(s), {len(self.warnings)} warning(s)"
        )

    def __str__(self) -> str:
        lines = [str(i) for i in self.errors + self.warnings]
        lines.append(self.summary())
        return "\n".join(lines)

    def to_json(self) -> str:
        """The report as JSON (root, counts and every issue)."""
        return json.dumps(
            {
                "root": str(self.root) if self.root is not None else None,
                "n_cases": self.n_cases,
                "n_files": self.n_files,
                "ok": self.ok,
                "issues": [i.to_dict() for i in self.issues],
            },
            indent=2,
        )
