"""Two evals of one prompt list, compared clip by clip, and prompt lists cut to shorter clips.

A 40-prompt eval moves a head by one clip in 30 to 40, so two settings (a guidance scale, a step
count) are told apart by the clips one gets right and the other not, with an exact two-sided
sign test on those, rather than by the difference of two noisy means. All attributes together are
compared clip by clip (a clip's attributes are read off one video and are not independent): per
clip, the attributes right in one minus those right in the other, with an exact sign-flip test.
Where both evals kept their clip features, the difference of their Fréchet distances gets a
standard error over prompts too, and where both kept each clip's flicker (evals since session 38),
the clips one eval makes calmer than the other are counted with a sign test. On the CPU a 15 s card eval takes two hours; the same prompts cut
to 4 s make such a comparison affordable.

  python -m measure.paired cut --prompts ../kinema-tiny/card/prompts.jsonl --seconds 4 --out runs/card4s.jsonl
  python -m measure.paired compare runs/eval-a.json runs/eval-b.json --prompts runs/card4s.jsonl
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from measure.attributes import hidden
from measure.dit_error import shortened
from measure.kept_features import load_features
from measure.metrics import frechet_distance
from measure.prompts import check_evals_match, read_prompts, spec_of, write_prompts
from measure.spread import METHOD, frechet_difference_error
from world.spec import FPS


def cut_prompts(prompts: list[dict], seconds: int) -> list[dict]:
    """The same prompts (words, attributes, seeds) with their clips cut to the first `seconds`."""
    out = []
    for entry in prompts:
        spec = shortened(spec_of(entry), seconds * FPS)
        out.append({**entry, "spec": spec.to_json()})
    return out


def sign_test(a_only: int, b_only: int) -> float:
    """Exact two-sided binomial p-value of `a_only` against `b_only` discordant clips at 1/2."""
    n = a_only + b_only
    if n == 0:
        return 1.0
    k = min(a_only, b_only)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def sign_flip_test(margins: list[int]) -> float:
    """Exact two-sided p-value that integer per-clip differences `margins` are symmetric about 0:
    the share of the 2^n sign assignments whose sum is at least as far from 0 as theirs, counted
    by convolving each clip's two equally likely signs. With margins of +-1 only, the sign test."""
    sizes = [abs(int(m)) for m in margins]
    total = sum(sizes)
    ways = np.zeros(2 * total + 1)
    ways[total] = 1.0
    for size in sizes:
        if size:
            ways = (np.roll(ways, size) + np.roll(ways, -size)) / 2  # sums stay within +-total
    observed = abs(sum(int(m) for m in margins))
    sums = np.arange(-total, total + 1)
    return float(min(1.0, ways[np.abs(sums) >= observed].sum()))


def p_text(p: float) -> str:
    """A p-value as printed: three decimals, or the bound when that would read 0.000."""
    return f"{p:.3f}" if p >= 0.0005 else "< 0.001"


def _right(a: dict, b: dict, prompts: list[dict]) -> list[dict[str, tuple[bool, bool]]]:
    """Per clip, per attribute it is judged on (what a prompt's style hides is not, as in the
    eval): whether `a` and whether `b` read it right."""
    check_evals_match(prompts, a, b)
    pa, pb = a["per_prompt"], b["per_prompt"]
    return [{attr: (x["pred"][attr] == want, y["pred"][attr] == want)
             for attr, want in p["attrs"].items() if attr not in hidden(p["attrs"])}
            for p, x, y in zip(prompts, pa, pb)]


def discordant(a: dict, b: dict, prompts: list[dict]) -> dict[str, tuple[int, int, int]]:
    """Per attribute: clips right in `a` only, in `b` only, and clips judged."""
    clips = _right(a, b, prompts)
    return {attr: (sum(c[attr] == (True, False) for c in clips if attr in c),
                   sum(c[attr] == (False, True) for c in clips if attr in c),
                   sum(attr in c for c in clips))
            for attr in prompts[0]["attrs"]}


def clip_margins(a: dict, b: dict, prompts: list[dict]) -> list[int]:
    """Per clip: how many more of its judged attributes `a` reads right than `b`."""
    return [sum(ra for ra, _ in c.values()) - sum(rb for _, rb in c.values()) for c in _right(a, b, prompts)]


def frechet_line(a: tuple | None, b: tuple | None) -> str:
    """The two evals' Fréchet distances and their difference's error over prompts, from the clip
    features kept beside each result (measure/kept_features.py)."""
    if a is None or b is None:
        missing = "neither eval kept its" if a is None and b is None else f"{'A' if a is None else 'B'} kept no"
        return f"Fréchet distance: not compared, {missing} clip features (evals before session 37 did not keep them)"
    fa, fb = frechet_distance(*a), frechet_distance(*b)
    return (f"Fréchet distance: A {fa:.4g}, B {fb:.4g}; A - B = {fa - fb:+.4g}, standard error "
            f"±{frechet_difference_error(a, b):.3g} ({METHOD})")


def flicker_line(a: dict, b: dict) -> str:
    """Each clip's flicker in `a` against the same clip's in `b`: their means, and how many clips
    each makes calmer, with the sign test (the per-clip differences are not integers, and a clip
    that flickers wildly in one eval should not outweigh the rest)."""
    fa = [c.get("flicker") for c in a["per_prompt"]]
    fb = [c.get("flicker") for c in b["per_prompt"]]
    if None in fa or None in fb:
        which = "neither eval kept" if None in fa and None in fb else f"{'A' if None in fa else 'B'} did not keep"
        return f"flicker: not compared clip by clip, {which} it per clip (evals before session 38 did not)"
    calmer_a, calmer_b = sum(x < y for x, y in zip(fa, fb)), sum(x > y for x, y in zip(fa, fb))
    return (f"flicker: A {np.mean(fa):.4g}, B {np.mean(fb):.4g}; A calmer in {calmer_a} clips, B in {calmer_b}; "
            f"sign test p {p_text(sign_test(calmer_a, calmer_b))}")


def _describe(result: dict) -> str:
    return f"{result.get('model')} steps {result.get('steps')} guidance {result.get('guidance')}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    cut = sub.add_parser("cut", help="write the prompt list with its clips cut to --seconds")
    cut.add_argument("--prompts", type=Path, required=True)
    cut.add_argument("--seconds", type=int, required=True)
    cut.add_argument("--out", type=Path, required=True)
    cmp = sub.add_parser("compare", help="clips right in one eval and not the other, per attribute")
    cmp.add_argument("a", type=Path)
    cmp.add_argument("b", type=Path)
    cmp.add_argument("--prompts", type=Path, required=True)
    args = ap.parse_args(argv)
    try:
        prompts = read_prompts(args.prompts)
        if args.command == "cut":
            if not 1 <= args.seconds <= 15:
                raise ValueError(f"--seconds must be 1 to 15, not {args.seconds}")
            write_prompts(args.out, cut_prompts(prompts, args.seconds))
            print(f"wrote {len(prompts)} prompts of {args.seconds} s to {args.out}")
            return 0
        a, b = (json.loads(p.read_text()) for p in (args.a, args.b))
        table = discordant(a, b, prompts)
        margins = clip_margins(a, b, prompts)
        words = [p["prompt"] for p in prompts]
        features = load_features(args.a, words), load_features(args.b, words)
    except (OSError, ValueError, KeyError) as err:
        print(f"measure.paired: {err}", file=sys.stderr)
        return 2
    print(f"A: {args.a} ({_describe(a)}), overall {a['accuracy']['all']['overall']:.3f}")
    print(f"B: {args.b} ({_describe(b)}), overall {b['accuracy']['all']['overall']:.3f}")
    print(f"{'attribute':10s} {'A only':>6s} {'B only':>6s} {'judged':>6s} {'sign test p':>11s}")
    for attr, (a_only, b_only, judged) in table.items():
        print(f"{attr:10s} {a_only:6d} {b_only:6d} {judged:6d} {sign_test(a_only, b_only):11.3f}")
    ahead_a, ahead_b = sum(m > 0 for m in margins), sum(m < 0 for m in margins)
    print(f"all attributes, clip by clip: A reads more right in {ahead_a} clips, B in {ahead_b}, "
          f"{len(margins) - ahead_a - ahead_b} even; A - B = {sum(margins):+d} attributes; "
          f"sign-flip test p {p_text(sign_flip_test(margins))}")
    print(frechet_line(*features))
    print(flicker_line(a, b))
    return 0


if __name__ == "__main__":
    sys.exit(main())
