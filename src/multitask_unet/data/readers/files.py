"""Grouping ``CASE_0000.nii.gz`` (image channels) and ``CASE.nii.gz`` (mask) files into cases."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from multitask_unet.data.io import image_suffix

__all__ = ["CaseFiles", "channel_path", "group_case_files"]

_CHANNEL = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")
_IGNORED = (".", "_")


@dataclass
class CaseFiles:
    """The files of one case found in one folder."""

    case_id: str
    channels: dict[int, Path] = field(default_factory=dict)
    mask: Path | None = None
    suffix: str = ".nii.gz"

    def images(self, num_channels: int, folder: Path) -> tuple[Path, ...]:
        """Paths of channels ``0..num_channels-1``; absent ones are the paths they should have."""
        return tuple(
            self.channels.get(c, channel_path(folder, self.case_id, c, self.suffix))
            for c in range(max(num_channels, 1))
        )


def channel_path(folder: Path, case_id: str, channel: int, suffix: str = ".nii.gz") -> Path:
    """``folder / f"{case_id}_{channel:04d}{suffix}"``."""
    return folder / f"{case_id}_{channel:04d}{suffix}"


def group_case_files(
    folder: Path, *, suffix: str | None = None
) -> tuple[dict[str, CaseFiles], list[Path]]:
    """Group the image files of ``folder`` by case.

    Args:
        folder: Folder with ``CASE_XXXX{suffix}`` image channels and ``CASE{suffix}`` masks.
        suffix: File ending to accept (e.g. ``".nii.gz"``); ``None`` accepts every image format.

    Returns:
        ``(cases, others)``: cases by id (sorted), and the files that are not images (hidden
        files and names starting with ``_`` are skipped silently).
    """
    images: list[tuple[Path, str, str]] = []  # path, stem, suffix
    others: list[Path] = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(_IGNORED) or path.is_dir():
            continue
        found = image_suffix(path)
        if found is None or (suffix is not None and not path.name.endswith(suffix)):
            others.append(path)
        else:
            images.append((path, path.name[: -len(found)], found))
    stems = {stem for _, stem, _ in images}
    cases: dict[str, CaseFiles] = {}
    for path, stem, found in images:
        match = _CHANNEL.match(stem)
        # "case_0010" is the mask of case "case_0010" when "case_0010_0000" exists, else a channel.
        if match and f"{stem}_0000" not in stems:
            entry = cases.setdefault(match["case"], CaseFiles(match["case"], suffix=found))
            entry.channels[int(match["channel"])] = path
        else:
            cases.setdefault(stem, CaseFiles(stem, suffix=found)).mask = path
    return dict(sorted(cases.items())), others
