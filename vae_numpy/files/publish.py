r"""Publishing a run: its line in a Markdown page's table, and copies of what it replaces.

A page holds a table of results between two marker lines (``<!-- table:begin -->`` and
``<!-- table:end -->`` for docs/reproduction.md). Publishing a run replaces that run's own line
(the one its previous results made) or adds one, and touches nothing else: not the other lines
of the table, not the text around it. A page whose markers are not each alone on one line,
once, in order, is refused with the line number, never guessed at. Whatever is replaced (the
page, the files of the earlier publication) is copied first into a directory the caller names.
"""
import json
import os
import shutil
import time
from pathlib import Path

from .errors import FileFormatError


def read_text(path):
    r"""The text of the file ``path``, or "" if there is none (a page not written yet)."""
    if not os.path.exists(path):
        return ""
    with open(path) as f:
        return f.read()


def read_record(path, check):
    r"""The JSON object in ``path`` (e.g. a published run's metrics.json), or None if there is
    no such file. ``check(record)`` may raise KeyError, TypeError, ValueError or IndexError for
    a record it cannot use; that, or text that is not JSON, is a FileFormatError naming the
    file."""
    if not os.path.exists(path):
        return None
    try:
        record = json.loads(read_text(path))
        check(record)
    except (ValueError, KeyError, TypeError, IndexError) as err:
        raise FileFormatError(path, f"not the record of a published run "
                                    f"({type(err).__name__}: {err})") from None
    return record


def table_span(text, page, begin, end):
    r"""The 0-based line numbers of the ``begin`` and ``end`` marker lines in ``text``, or
    None when the page has neither.

    Raises
    ------
    FileFormatError naming ``page`` and the line: a marker that does not stand alone on its
    line, a marker found twice, a missing one, or the end before the begin.
    """
    found = {begin: [], end: []}
    for i, line in enumerate(text.splitlines()):
        for marker, lines in found.items():
            if marker in line:
                if line.strip() != marker:
                    raise FileFormatError(page, f"line {i + 1}: {marker} must stand alone on its "
                                                "line (it marks where the table of results begins "
                                                "or ends); move it or write it differently")
                lines.append(i)
    begins, ends = found.values()
    if not begins and not ends:
        return None
    if len(begins) != 1 or len(ends) != 1 or begins[0] > ends[0]:
        at = lambda lines: ", ".join(str(i + 1) for i in lines) or "none"   # noqa: E731
        raise FileFormatError(page, f"the table needs one {begin} line and, after it, one {end} "
                                    f"line; found the first on lines {at(begins)} and the second "
                                    f"on lines {at(ends)}")
    return begins[0], ends[0]


def with_row(text, page, markers, header, old_line, new_line):
    r"""``text`` with ``new_line`` in place of ``old_line`` in the table between ``markers``
    (begin, end); a new table at the end of the page if it has none.

    header : the table's first lines (column names, separator), added if the table lacks them.
    old_line : the line the previous publication made, or None. If it is not in the table,
        ``new_line`` goes after the table's last row. Every other line stays as it is.
    Returns (the new text, whether ``old_line`` was found).
    """
    lines, span = text.splitlines(), table_span(text, page, *markers)
    if span is None:
        return "\n".join(lines + ["", markers[0], *header, new_line, markers[1]]) + "\n", False
    first, last = span
    body = lines[first + 1:last]
    if header[0] not in body:
        body = list(header) + body
    found = old_line is not None and old_line in body
    if found:
        body[body.index(old_line)] = new_line
    else:
        rows = [i for i, line in enumerate(body) if line.startswith("|")]
        body.insert(rows[-1] + 1, new_line)
    return "\n".join(lines[:first + 1] + body + lines[last:]) + "\n", found


def with_table(text, page, markers, lines):
    r"""``text`` with the lines between the ``markers`` (begin, end) replaced by ``lines`` (a
    new table at the end of the page if it has none); the text around the table stays."""
    page_lines, span = text.splitlines(), table_span(text, page, *markers)
    if span is None:
        return "\n".join(page_lines + ["", markers[0], *lines, markers[1]]) + "\n"
    first, last = span
    return "\n".join(page_lines[:first + 1] + list(lines) + page_lines[last:]) + "\n"


def keep_copies(files, keep_root):
    r"""Copy what is about to be replaced into a new directory ``keep_root/<time>/`` (``-2``,
    ``-3``, ... if that exists).

    files : ``{relative name in the copy: path}``; paths that do not exist are skipped.
    Returns the directory, or None if none of the paths exists.
    """
    existing = {name: path for name, path in files.items() if os.path.exists(path)}
    if not existing:
        return None
    stamp = Path(keep_root, time.strftime("%Y%m%d-%H%M%S"))
    keep, n = stamp, 2
    while keep.exists():
        keep, n = stamp.with_name(f"{stamp.name}-{n}"), n + 1
    for name, path in existing.items():
        (keep / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, keep / name)
    return keep
