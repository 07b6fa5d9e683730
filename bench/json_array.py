"""Parsing a JSON array file of records: the service's reader against ``ijson.items``.

The reader (:func:`service.ingest.readers.iter_json_array`) builds each record from
``ijson.basic_parse`` events with a nesting limit, because ``ijson.items`` keeps an event
prefix that grows with the depth (its memory grows with the square of the nesting). Measured in
the same run on ``--records`` records of 9 fields (default 200,000), each the best of
``--runs``:

* baseline: ``ijson.items(feed, "item")`` (C backend) on the same text feed;
* ``ObjectBuilder``: ijson's own builder fed ``basic_parse`` events (the library's way);
* the reader, as imports call it.

Prints seconds and ratios against the baseline. Run: ``.venv/bin/python bench/json_array.py``.
"""

from __future__ import annotations

import argparse
import io
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import ijson
from ijson.common import ObjectBuilder

from service.ingest.readers import iter_json_array
from service.ingest.readers._json import _Utf8Feed

BLOCK = 1 << 16


def _document(n: int) -> str:
    return json.dumps([{"external_id": f"X{i}", "received_at": "2023-01-05T10:00:00",
                        "category": "fireworks", "region": "150100", "text": "投诉内容" * 5,
                        "n": i, "x": 1.5, "ok": True, "none": None} for i in range(n)],
                      ensure_ascii=False)


def _items(doc: str) -> Iterator[Any]:
    yield from ijson.items(_Utf8Feed("", io.StringIO(doc), BLOCK, None), "item", use_float=True,
                       buf_size=BLOCK)


def _object_builder(doc: str) -> Iterator[Any]:
    depth, builder = 0, ObjectBuilder()
    for event, value in ijson.basic_parse(_Utf8Feed("", io.StringIO(doc), BLOCK, None),
                                          use_float=True, buf_size=BLOCK):
        if event in ("start_map", "start_array"):
            depth += 1
            if depth == 1:
                continue
        elif event in ("end_map", "end_array"):
            depth -= 1
            if depth == 0:
                continue
        builder.event(event, value)
        if depth == 1:
            yield builder.value
            builder = ObjectBuilder()


def _reader(doc: str) -> Iterator[Any]:
    return iter_json_array(io.StringIO(doc), block=BLOCK)


def _best(parse: Callable[[str], Iterator[Any]], doc: str, runs: int, n: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        count = sum(1 for _ in parse(doc))
        times.append(time.perf_counter() - t0)
        assert count == n, (parse.__name__, count)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    doc = _document(args.records)
    base = _best(_items, doc, args.runs, args.records)
    print(f"{args.records:,} records, {len(doc.encode()) / 1e6:.1f} MB, best of {args.runs}")
    print(f"ijson.items (baseline)      {base:6.2f} s")
    for name, parse in (("ObjectBuilder on events", _object_builder),
                        ("the reader (iter_json_array)", _reader)):
        t = _best(parse, doc, args.runs, args.records)
        print(f"{name:27s} {t:6.2f} s   {t / base:.2f}x the baseline")


if __name__ == "__main__":
    main()
