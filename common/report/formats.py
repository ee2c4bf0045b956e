"""The table across runs in each output format: markdown, LaTeX (booktabs), CSV, HTML."""

from __future__ import annotations


from common.errors import UserError
from common.report.crossrun import CrossRun
from common.report.run import markdown
from common.report.values import METRICS


FORMATS = ("markdown", "latex", "csv", "html")


def latex_escape(text: str) -> str:
    """LaTeX's special characters escaped (`_`, `%`, `&`, ...); ± as math."""
    special = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
               "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
               "^": r"\textasciicircum{}"}
    return "".join(special.get(ch, ch) for ch in text).replace("±", r"$\pm$")


def render_cross_run(table: CrossRun, fmt: str = "markdown", transpose: bool = False,
                     figure: str | None = None) -> str:
    """The table in one format: the shared values once above it (CSV: as constant columns at
    its end, since a CSV has no place for a line of text), then the rows; `transpose` puts the
    runs in columns and the quantities in rows. `figure`: a PNG linked below (markdown)."""
    if fmt == "csv":
        frame = table.frame.copy()
        for key, value in table.shared.items():
            if key not in frame.columns:
                frame[key] = value
        if transpose:
            frame = frame.set_axis(table.labels).T.rename_axis("quantity").reset_index()
        return frame.to_csv(index=False)
    shown = table.display()
    if transpose:
        shown = shown.set_axis(table.labels).T.rename_axis("quantity").reset_index()
    metric_columns = [c for c in shown.columns if (c in METRICS) != transpose]
    if fmt == "markdown":
        text = f"{table.shared_line()}\n\n{markdown(shown)}\n"
        if figure:
            text += f"\n![validation curves and test accuracy against training seconds]" \
                    f"({figure})\n"
        return text
    if fmt == "latex":
        if transpose:
            metric_columns = list(shown.columns[1:])
        escaped = shown.map(latex_escape).rename(columns=latex_escape)
        align = "".join("r" if c in metric_columns else "l" for c in shown.columns)
        tabular = escaped.style.hide(axis="index").to_latex(hrules=True, column_format=align)
        return f"{latex_escape(table.shared_line())}\n\n{tabular}"
    if fmt == "html":
        import html

        return (f"<p>{html.escape(table.shared_line())}</p>\n"
                + shown.to_html(index=False, escape=True) + "\n")
    raise UserError(f"--format must be one of: {', '.join(FORMATS)}")

