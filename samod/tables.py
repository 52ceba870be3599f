"""Writing a results table: Markdown for the reader, JSON beside it, measured rows only.

Each of paper 1's tables is built in the file named for what it evaluates: Table 5 (the autoencoder's
reconstructions) in samod/autoencoder_evaluation.py, Tables 2-3 (generations) in samod/evaluation.py.
Each of those files says there how its rows become columns, registering a `columns(rows) -> (header,
cells)` function with `table_format` under the column only its rows carry ("stft_distance" for Table 5,
"FD" for Tables 2-3). This module holds what both share:

- `markdown_table(rows)`: the rows as a Markdown table, with the columns of their kind;
- `write_table(rows, path_stem, title, notes)`: path_stem.md and path_stem.json, with the notes that
  record the provenance; it accepts measured rows only (published numbers are shown beside a measured
  table, never written into one);
- `cell(value, fmt)`: one formatted cell, "—" for a missing number.

Importing the table's own module (samod.autoencoder_evaluation or samod.evaluation) registers its format;
the rows of either come from that module, so a caller has it imported already.
Taught in notebooks/01_autoencoder.ipynb (Table 5) and notebooks/06_evaluation.ipynb (Tables 2-3).
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from samod.profiles import get_profile

Columns = Callable[[list[dict]], tuple[tuple[str, ...], list[list[str]]]]  # rows -> (header, cells per row)
_FORMATS: dict[str, Columns] = {}  # key column -> how rows carrying it become a table


def table_format(key_column: str) -> Callable[[Columns], Columns]:
    """Decorator: `columns` lays out the rows that carry `key_column` (a column no other table's rows have)."""
    def register(columns: Columns) -> Columns:
        _FORMATS[key_column] = columns
        return columns
    return register


def cell(value, fmt: str) -> str:
    """`value` formatted with `fmt`, or "—" where the row has no number."""
    return "—" if value is None else fmt.format(value)


def markdown_table(rows: list[dict]) -> str:
    """Rows as a Markdown table, with the header and cells their table's format gives (see `table_format`)."""
    formats = [key for key in _FORMATS if rows and key in rows[0]]
    if not formats:
        known = ", ".join(sorted(_FORMATS)) or "none"
        raise ValueError(f"no table format for rows with columns {sorted(rows[0]) if rows else []} (formats "
                         f"known: {known}); import samod.autoencoder_evaluation for Table 5 or samod.evaluation "
                         f"for Tables 2-3, whose rows these should be")
    header, cells = _FORMATS[formats[0]](rows)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row_cells) + " |" for row_cells in cells]
    return "\n".join(lines)


def write_table(rows: list[dict], path_stem: str | Path, title: str, notes: dict) -> tuple[Path, Path]:
    """Write path_stem.md (title, markdown_table(rows), notes as a list) and path_stem.json (title, rows, notes).

    notes record the provenance: which files, how many seconds, profile, seed, hardware, commit (and, for
    Tables 2-3, the embedders that made each column). The active profile is added when notes do not name
    one. Only measured rows are accepted.
    """
    published = [row["model"] for row in rows if row.get("source") != "measured"]
    if published:
        raise ValueError(f"rows {published} are not measured (published numbers?); write measured rows "
                         f"only and show PUBLISHED_TABLE5 beside them with markdown_table(PUBLISHED_TABLE5)")
    notes = {"profile": get_profile().name, **notes}
    path_stem = Path(path_stem)
    path_stem.parent.mkdir(parents=True, exist_ok=True)
    text = f"# {title}\n\n{markdown_table(rows)}\n\n" + "".join(f"- {k}: {v}\n" for k, v in notes.items())
    md_path, json_path = Path(f"{path_stem}.md"), Path(f"{path_stem}.json")  # a stem may hold dots
    md_path.write_text(text)
    json_path.write_text(json.dumps({"title": title, "rows": rows, "notes": notes}, indent=1) + "\n")
    return md_path, json_path
