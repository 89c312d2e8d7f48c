"""What one eval read for one attribute, against what each prompt asked for.

An accuracy says how often a head was right, not what the model drew instead. For the subject the
difference matters: a clip read as "none" has no subject the classifier can find at all (the DiT
drew background), while a car read as a ball has something in the wrong shape. Clips whose style
hides the attribute are left out, as in the eval.

  python -m measure.confusion runs/eval-card4s-flow4088.json --prompts runs/card4s.jsonl --attribute subject
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from measure.attributes import hidden
from measure.prompts import check_evals_match, read_prompts


def confusion(result: dict, prompts: list[dict], attribute: str) -> dict[str, Counter]:
    """Per value the prompts asked for (in order of first appearance): how often each value was read."""
    check_evals_match(prompts, result)
    if attribute not in prompts[0]["attrs"]:
        raise ValueError(f"no attribute {attribute!r}; the prompts have {', '.join(prompts[0]['attrs'])}")
    table: dict[str, Counter] = {}
    for p, clip in zip(prompts, result["per_prompt"]):
        if attribute in hidden(p["attrs"]):
            continue
        table.setdefault(p["attrs"][attribute], Counter())[clip["pred"][attribute]] += 1
    return table


def _reads(counts: Counter) -> str:
    return ", ".join(f"{value} {n}" for value, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("eval", type=Path, help="an evaluate.py --json result")
    ap.add_argument("--prompts", type=Path, required=True, help="the prompt list that eval read")
    ap.add_argument("--attribute", default="subject")
    args = ap.parse_args(argv)
    try:
        table = confusion(json.loads(args.eval.read_text()), read_prompts(args.prompts), args.attribute)
    except (OSError, ValueError, KeyError) as err:
        print(f"measure.confusion: {err}", file=sys.stderr)
        return 2
    judged = sum(sum(c.values()) for c in table.values())
    right = sum(c[want] for want, c in table.items())
    print(f"{args.attribute}: {right} of {judged} clips read as asked")
    print(f"{'asked':12s} {'clips':>5s} {'right':>5s}  read as")
    for want, counts in table.items():
        print(f"{want:12s} {sum(counts.values()):5d} {counts[want]:5d}  {_reads(counts)}")
    print(f"{'(all)':12s} {judged:5d} {right:5d}  {_reads(sum(table.values(), Counter()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
