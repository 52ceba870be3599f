"""What every corpus build and importer shares: resumable progress, metadata.jsonl, the skipped-files list.

A build walks a list of items (songs to render, files to import). Each finished item is appended at
once to DIR/progress.jsonl, either with its metadata record or with the one-line reason it was
skipped. Rerun after an interruption, the build reads that file back and does only what is missing;
a truncated last line (the process was killed while writing) is ignored and that item is redone.
At the end DIR/metadata.jsonl (one JSON object per usable item, in item order) and DIR/skipped.txt
(one "<item>\t<reason>" line per skipped item) are written, and the skipped items are printed.

The first line of progress.jsonl holds the build's parameters; resuming with other parameters
(another seed, another renderer) is refused rather than mixing two corpora in one folder.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

METADATA = "metadata.jsonl"
SKIPPED = "skipped.txt"
PROGRESS = "progress.jsonl"


def write_jsonl(path: str | Path, records: list[dict]) -> Path:
    """Write records one JSON object per line, atomically (a temporary file renamed into place)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


class Progress:
    """Append-only record of a build's finished items; see the module docstring."""

    def __init__(self, out_dir: str | Path, params: dict):
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / PROGRESS
        self.params = params
        self.done: dict[str, dict] = {}  # item id -> {"id", "record"} or {"id", "skipped"}
        if self.path.exists():
            self._read_back()
        else:
            self._append({"params": params})

    def _read_back(self) -> None:
        lines = self.path.read_text(encoding="utf-8").splitlines()
        entries = []
        for line in lines:
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut short by an interruption: redo that item
                continue
        if not entries or "params" not in entries[0]:
            raise RuntimeError(f"{self.path} does not start with the build parameters; "
                               f"delete it to rebuild {self.dir} from scratch")
        if entries[0]["params"] != self.params:
            raise RuntimeError(f"{self.dir} was built with {entries[0]['params']}, not {self.params}; "
                               f"use another output folder, or delete {self.path} to rebuild")
        for entry in entries[1:]:
            self.done[entry["id"]] = entry
        if len(entries) < len(lines) or not self.path.read_bytes().endswith(b"\n"):  # a broken line or tail: rewrite
            write_jsonl(self.path, entries)

    def _append(self, entry: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def add(self, item_id: str, record: dict) -> None:
        """Item finished with a metadata record."""
        entry = {"id": item_id, "record": record}
        self.done[item_id] = entry
        self._append(entry)

    def skip(self, item_id: str, reason: str) -> None:
        """Item cannot be used; `reason` is one line."""
        entry = {"id": item_id, "skipped": " ".join(str(reason).split())}
        self.done[item_id] = entry
        self._append(entry)
        print(f"skipped {item_id}: {entry['skipped']}", flush=True)

    def finish(self, order: list[str]) -> tuple[list[dict], list[tuple[str, str]]]:
        """Write metadata.jsonl and skipped.txt in the order of `order`; return (records, skipped)."""
        records = [self.done[i]["record"] for i in order if i in self.done and "record" in self.done[i]]
        skipped = [(i, self.done[i]["skipped"]) for i in order if i in self.done and "skipped" in self.done[i]]
        write_jsonl(self.dir / METADATA, records)
        tmp = self.dir / (SKIPPED + ".tmp")
        tmp.write_text("".join(f"{i}\t{reason}\n" for i, reason in skipped), encoding="utf-8")
        os.replace(tmp, self.dir / SKIPPED)
        if skipped:
            print(f"{len(skipped)} item(s) skipped (listed in {self.dir / SKIPPED}):")
            for i, reason in skipped:
                print(f"  {i}: {reason}")
        return records, skipped
