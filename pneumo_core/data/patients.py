"""Patient ids from file names, so that no patient is split across train and evaluation."""

from __future__ import annotations

import re

__all__ = ["patient_id"]


def patient_id(filename: str, pattern: re.Pattern[str]) -> str:
    """Returns the patient id of an image file.

    Args:
        filename: The file's name or path; only the stem is matched.
        pattern: A compiled regex with a ``patient`` group (or none: the whole match is
            the id), searched in the file name's stem.

    Returns:
        The patient id, or the file's stem when the pattern does not match (the image is
        then its own group).

    Examples:
        >>> import re
        >>> from pneumo_core.data.config import DEFAULT_PATIENT_REGEX
        >>> p = re.compile(DEFAULT_PATIENT_REGEX)
        >>> patient_id("person12_bacteria_45.jpeg", p), patient_id("IM-0117-0001.jpeg", p)
        ('person12', 'IM-0117')
        >>> patient_id("NORMAL2-IM-0123-0001.jpeg", p)
        'NORMAL2-IM-0123'
    """
    name = filename.rsplit("/", 1)[-1]
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    match = pattern.search(stem)
    if match is None:
        return stem
    if "patient" in pattern.groupindex and match.group("patient"):
        return match.group("patient")
    return match.group(0)
