"""Tables printed to a terminal: columns as wide as their widest cell, two spaces apart."""

from __future__ import annotations


def print_table(header: tuple, rows: list[tuple], *, right: bool = False) -> None:
    """`header` then `rows`, every cell str()-ed; `right` aligns every column but the first right."""
    lines = [tuple(str(c) for c in row) for row in [header, *rows]]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        cells = (c.rjust(w) if right and i else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths)))
        print("  ".join(cells).rstrip(), flush=True)
