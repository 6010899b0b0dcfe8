"""Writes N stored-example records (a tenth of them repeats) and, beside them, the same records'
dedup keys one a line for `sort -u`.

    python bench/make_records.py N RECORDS.jsonl KEYS.txt
"""

import json
import random
import sys


def main() -> None:
    n, records_path, keys_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    rng = random.Random(0)
    kinds = ["short-long", "long-short", "short-short", "long-long", "sts", "bitext"]
    unique = int(n * 0.9)
    with open(records_path, "w", encoding="utf-8") as records, open(keys_path, "w", encoding="utf-8") as keys:
        for i in range(n):
            j = i if i < unique else rng.randrange(unique)  # the last tenth repeats earlier records
            kind = kinds[j % 6]
            query, positive = f"query {j} about topic {j % 997}", f"positive document {j} " + "text " * 8
            negative = None if kind in ("short-short", "long-long") else f"negative document {j}"
            record = {"id": f"r{i}", "index": i, "kind": kind, "task": "Retrieve things.", "language": "English",
                      "query": query, "positive": positive, "negative": negative}
            records.write(json.dumps(record, ensure_ascii=False) + "\n")
            keys.write(f"{kind}\t{query}\t{positive}\t{negative}\n")


if __name__ == "__main__":
    main()
