"""The report's "Label-noise audit" section (:mod:`results.final.label_audit`'s results)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from results.report.html_parts import esc, img

__all__ = ["section_label_audit"]


def section_label_audit(report: dict[str, Any], folder: Path) -> str:
    """The flagged counts and thumbnails of the most suspicious train images."""
    audit = report.get("label_audit")
    if not audit:
        return ""
    by_class = ", ".join(f"{n} {name}" for name, n in audit["flagged_by_class"].items())
    parts = [
        "<h2>Label-noise audit</h2>",
        f"<p>{audit['flagged']} of {audit['train_images']} train images ({esc(by_class)}) "
        f"have a label that {audit['folds']} out-of-fold models doubt (cleanlab's "
        "find_label_issues, ranked by self-confidence; every one is in "
        f"{esc(audit['file'])}). Train without them: <code>data.train_exclude: "
        f"RUN_DIR/final/{esc(audit['file'])}</code>. A flag is a question for a reader, "
        "not a verdict.</p>",
        "<div class=gallery>",
    ]
    for item in audit["shown"]:
        png = (folder / item["image"]).read_bytes()
        caption = (
            f"{item['path']} — labelled {item['class']}, "
            f"out-of-fold p = {item['out_of_fold_probability']:.3f}"
        )
        parts.append(img(png, f"suspicious label: {item['path']}", caption))
    parts.append("</div>")
    return "\n".join(parts)
