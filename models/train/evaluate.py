#!/usr/bin/env python3
"""Measure a model against prompts with known attributes (models/train/README.md, "Measuring").

  python evaluate.py --model ../kinema-tiny --classifier runs/main [--steps N] [--seconds 15]
  python evaluate.py --model runs/main --classifier runs/main --guidance 3   # a flow DiT with CFG
  python evaluate.py --reference --classifier runs/main          # rendered clips: the ceiling
  python evaluate.py --reference --through-ae runs/main --classifier runs/main
                                          # rendered clips encoded and decoded: the autoencoder's ceiling
  python evaluate.py --write-prompts prompts.jsonl [--in-dist 120 --per-heldout 4 --seconds 15]
  python evaluate.py --rescore eval.json --prompts prompts.jsonl   # judge saved classes again

Generates one clip per prompt with the PyTorch mirror and the browser's sampler (or, with
--reference, renders the clip the prompt describes), reads every clip with the attribute classifier,
and renders a fresh set of the same prompts' clips (same attributes, other positions, speeds and
textures) as the real-data side of the Fréchet distance and the flicker floor. Prints a table and
writes JSON (--json). The metrics are defined in measure/metrics.py.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from measure.attributes import ATTRS, hidden  # noqa: E402
from measure.classifier import load_classifier  # noqa: E402
from measure.partial import PartialReadings, partial_path  # noqa: E402
from measure.kept_features import save_features  # noqa: E402
from measure.metrics import (accuracy, clip_class, flicker_per_frame, flicker_summary,  # noqa: E402
                             frechet_distance, judged_right, persistence)
from measure.prompts import build_prompts, read_prompts, spec_of, write_prompts  # noqa: E402
from measure.spread import METHOD, accuracy_errors, frechet_error  # noqa: E402
from world.clips import render_clips  # noqa: E402
from world.spec import FPS, is_heldout, load_heldout  # noqa: E402

RESEED = 7919  # the fresh renders' seed stream (measure.prompts.spec_of)


@torch.no_grad()
def read_clips(clf, video: torch.Tensor) -> list[dict]:
    """Per clip: its class per attribute, per-frame subject classes, clip feature, flicker."""
    logits, feats = clf(video.to(next(clf.parameters()).device))
    flick = flicker_per_frame(video).cpu().numpy()
    out = []
    for b in range(video.shape[0]):
        out.append({"pred": {a: clip_class(lg[b]) for a, lg in logits.items()},
                    "subject_frames": logits["subject"][b].argmax(-1).cpu().numpy(),
                    "feature": feats[b].mean(0).float().cpu().numpy(), "flicker": flick[b]})
    return out


def rendered(entries, reseed, height, width, batch, device):
    for s in range(0, len(entries), batch):
        specs = [spec_of(e, reseed) for e in entries[s:s + batch]]
        yield render_clips(specs, height, width, device, with_labels=False)[0]


def generated(entries, model, tok, chunks, steps, batch, frames, guidance=1.0, flow_dit=False):
    from measure.generate import generate
    for s in range(0, len(entries), batch):
        part = entries[s:s + batch]
        video = generate(model, tok, [e["prompt"] for e in part], [e["seed"] for e in part], chunks, steps,
                         guidance=guidance, flow_dit=flow_dit)
        yield video[:, :frames]


def through(source, ae, round_trip, fidelity):
    """The rendered batches of `source`, each encoded and decoded by `ae`, noting the PSNR."""
    for video in source:
        rec = round_trip(ae, video)
        fidelity.add(video, rec)
        yield rec


def judge(pred: list[dict], entries: list[dict]) -> tuple[dict, dict, dict]:
    """Accuracies of clip-level classes `pred` ({attribute: class index} per prompt), counts, and
    the overall accuracies' standard errors over prompts (measure/spread.py)."""
    attrs = list(ATTRS)
    idx = {a: {v: i for i, v in enumerate(vs)} for a, vs in ATTRS.items()}
    target = [{a: idx[a][e["attrs"][a]] for a in attrs} for e in entries]
    held = [i for i, e in enumerate(entries) if e["heldout"]]
    ind = [i for i, e in enumerate(entries) if not e["heldout"]]
    # an attribute the prompt's style hides (a manga clip's colour) is not judged
    scored = [[a for a in attrs if a not in hidden(e["attrs"])] for e in entries]
    pick = lambda xs, ii: [xs[i] for i in ii]  # noqa: E731
    acc = lambda ii: accuracy(pick(pred, ii), pick(target, ii), attrs, pick(scored, ii))  # noqa: E731
    # The held-out combination itself: all of its judged attributes right (e.g. subject AND style).
    combo_right = [all(pred[i][a] == target[i][a] for a in entries[i]["heldout"] if a in scored[i]) for i in held]
    right, judged = judged_right(pred, target, attrs, scored)
    groups = {"all": list(range(len(entries))), "in_distribution": ind, "heldout": held}
    return ({"all": acc(groups["all"]), "in_distribution": acc(ind), "heldout": acc(held),
             "heldout_combination": float(np.mean(combo_right)) if held else None},
            {"prompts": len(entries), "in_distribution": len(ind), "heldout": len(held),
             "not_judged": {a: sum(a not in s for s in scored) for a in attrs}},
            accuracy_errors(right, judged, groups))


def summarise(clips: list[dict], fresh: list[dict], entries: list[dict], chunk_frames: int) -> dict:
    accuracy_, counts, errors = judge([c["pred"] for c in clips], entries)
    features = np.stack([c["feature"] for c in clips]), np.stack([c["feature"] for c in fresh])
    fl_gen = flicker_summary(np.stack([c["flicker"] for c in clips]), chunk_frames)
    fl_ref = flicker_summary(np.stack([c["flicker"] for c in fresh]), chunk_frames)
    subject = ATTRS["subject"]
    return {
        "accuracy": accuracy_,
        "chance": {a: 1 / len(ATTRS[a]) for a in ATTRS},
        "frechet": frechet_distance(*features),
        "error": {"method": METHOD, "accuracy": errors, "frechet": frechet_error(*features)},
        "persistence": persistence(np.stack([c["subject_frames"] for c in clips]),
                                   np.array([subject.index(e["attrs"]["subject"]) for e in entries]), FPS),
        "flicker": {"clips": fl_gen, "rendered": fl_ref, "excess": fl_gen["mean"] - fl_ref["mean"]},
        "counts": counts,
    }


def rescore(path: Path, entries: list[dict]) -> dict:
    """A result JSON judged again under today's rules, from its per-prompt classes (the other
    figures need the clips and are kept as they were)."""
    r = json.loads(Path(path).read_text())
    per = r.get("per_prompt") or []
    if [p["prompt"] for p in per] != [e["prompt"] for e in entries]:
        raise SystemExit(f"{path}: its {len(per)} prompts are not the {len(entries)} of --prompts")
    try:
        pred = [{a: ATTRS[a].index(p["pred"][a]) for a in ATTRS} for p in per]
    except (KeyError, ValueError) as e:
        raise SystemExit(f"{path}: a prediction outside today's classes ({e}); it cannot be judged again")
    r["accuracy"], r["counts"], errors = judge(pred, entries)
    # the Fréchet distance's error needs the clip features, which a result does not keep
    r["error"] = {"method": METHOD, "frechet": None, **r.get("error", {}), "accuracy": errors}
    return r


def table(r: dict, head: str) -> str:
    acc, ch = r["accuracy"], r["chance"]
    f = lambda x: "   -  " if x is None else f"{x:6.3f}"  # noqa: E731
    lines = [head, f"{'attribute':12s} {'chance':>6s} {'all':>6s} {'in-dist':>7s} {'held-out':>8s}"]
    for a in list(ATTRS) + ["overall", "all_correct"]:
        lines.append(f"{a:12s} {f(ch.get(a))} {f(acc['all'].get(a))} {f(acc['in_distribution'].get(a)):>7s} "
                     f"{f(acc['heldout'].get(a)):>8s}")
    p, fl = r["persistence"], r["flicker"]
    n = r["counts"]
    lines += [
        f"held-out combinations right (every attribute of the pair/triple): {f(acc['heldout_combination']).strip()}"
        f" of {n['heldout']} clips",
        "not judged, hidden by the prompt's style: " + (", ".join(
            f"{a} in {k} of {n['prompts']} clips" for a, k in n.get("not_judged", {}).items() if k) or "nothing"),
        f"Fréchet distance, classifier features (D={r['feature_dim']}), vs {n['prompts']} fresh renders: {r['frechet']:.4g}",
        f"subject persistence: {p['frames']:.3f} of frames are the prompted subject; last second {f(p['last_second']).strip()};"
        f" clips with it in >= {p['clips_at_least']:.0%} of frames: {p['clips']:.3f}",
        f"flicker (mean |Y[t+1]-2Y[t]+Y[t-1]|, 8-bit levels): {fl['clips']['mean']:.3f} vs rendered {fl['rendered']['mean']:.3f}"
        f" (excess {fl['excess']:+.3f}); at chunk seams {f(fl['clips']['at_seams']).strip()}, inside chunks "
        f"{fl['clips']['inside_chunks']:.3f}",
    ]
    lines.append(error_line(r))
    if r.get("autoencoder"):
        ae = r["autoencoder"]
        lines.append(f"autoencoder round trip: PSNR {ae['psnr']:.2f} dB against the rendered frames; each 8x8-pixel "
                     f"4-frame block as its mean colour: {ae['block_psnr']:.2f} dB (mean over {ae['clips']} clips)")
    return "\n".join(lines)


def error_line(r: dict) -> str:
    e = r["error"]
    pm = lambda x, fmt: "-" if x is None else f"±{x:{fmt}}"  # noqa: E731
    acc = e["accuracy"]
    fd = "not kept in this result" if e["frechet"] is None else pm(e["frechet"], ".3g")
    return (f"standard errors ({e['method']}): overall {pm(acc['all'], '.3f')} (in-dist "
            f"{pm(acc['in_distribution'], '.3f')}, held-out {pm(acc['heldout'], '.3f')}); Fréchet distance {fd}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", help="model folder (manifest.json) or train.py run folder")
    ap.add_argument("--classifier", help="classifier checkpoint folder, or a run folder with classifier/")
    ap.add_argument("--reference", action="store_true", help="evaluate rendered clips instead of generated ones")
    ap.add_argument("--through-ae", metavar="RUN",
                    help="with --reference: pass the rendered clips through this autoencoder (a run folder or "
                         "its ae/) first, and print its PSNR on them (measure/round_trip.py)")
    ap.add_argument("--prompts", help="prompt file (JSONL, see measure/prompts.py); default: built from the grammar")
    ap.add_argument("--write-prompts", help="write the built prompt list here and exit")
    ap.add_argument("--in-dist", type=int, default=120, help="built list: prompts drawn like training data")
    ap.add_argument("--per-heldout", type=int, default=4, help="built list: prompts per held-out combination")
    ap.add_argument("--seconds", type=int, default=15, help="built list: clip length")
    ap.add_argument("--prompt-seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=None,
                    help="Euler steps per chunk (default: the model's training.sampler_steps, else 2, as the Rust CLI)")
    ap.add_argument("--guidance", type=float, default=None,
                    help="classifier-free guidance scale for a flow DiT, which has none baked in (default: the model "
                         "folder's training.sampler_guidance, as the Rust sampler, else 1 = none; the shortcut stage "
                         "bakes in train.py --guidance, 3): each Euler step costs a second pass")
    ap.add_argument("--batch", type=int, default=8, help="clips generated / rendered / classified at once")
    ap.add_argument("--json", help="write the results here (default runs/eval/<generated|reference>.json)")
    ap.add_argument("--rescore", help="a result JSON of these --prompts: judge its per-prompt classes again")
    ap.add_argument("--device", default=None)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    entries = read_prompts(args.prompts) if args.prompts else build_prompts(
        args.in_dist, args.per_heldout, args.seconds, args.prompt_seed)
    if args.write_prompts:
        write_prompts(Path(args.write_prompts), entries)
        print(f"wrote {len(entries)} prompts to {args.write_prompts}")
        return None
    if args.rescore:
        if not args.prompts:
            ap.error("--rescore needs the --prompts file the result was made from")
        r = rescore(Path(args.rescore), entries)
        print(table(r, f"kinema eval, judged again: {args.rescore} ({r['clips_from']})"))
        if args.json:
            Path(args.json).write_text(json.dumps(r, indent=1) + "\n")
            print(f"wrote {args.json}")
        return r
    if not args.classifier or not (args.model or args.reference):
        ap.error("give --classifier and --model (or --reference)")
    if args.guidance is not None and args.reference:
        ap.error("--guidance is a sampler setting: it needs --model, not --reference")
    if args.guidance is not None and not args.guidance > 0:
        ap.error(f"--guidance {args.guidance}: give a scale > 0 (1 = none)")
    if args.through_ae and not args.reference:
        ap.error("--through-ae reads rendered clips: give it with --reference")
    dev = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.backends.cuda.matmul.allow_tf32 = True
    held = load_heldout()
    for e in entries:  # a hand-edited file must still say which prompts are held-out combinations
        assert bool(e["heldout"]) == is_heldout(e["attrs"], held), e["prompt"]
    frames = {spec_of(e).frames for e in entries}
    assert len(frames) == 1, f"one clip length per run, got {sorted(frames)}"
    frames = frames.pop()
    clf, cstate = load_classifier(Path(args.classifier), dev)
    H, W = clf.cfg.video_height, clf.cfg.video_width
    t0 = time.time()
    fidelity = partial = None
    done = 0
    mode = ("round_trip" if args.through_ae else "reference") if args.reference else "generated"
    out = Path(args.json) if args.json else HERE / "runs" / "eval" / f"{mode}.json"
    if args.reference:
        # no chunks in a render: its "seams" are read at kinema-tiny's 1 s chunk boundaries
        source, desc, chunk = rendered(entries, None, H, W, args.batch, dev), "rendered clips (reference)", FPS
        if args.through_ae:
            import train
            from measure.round_trip import Fidelity, load_autoencoder, round_trip
            ae, ae_state = load_autoencoder(Path(args.through_ae), dev)
            avc = train.model_config(ae_state.get("toy", False)).video
            if (avc.height, avc.width) != (H, W):
                raise SystemExit(f"{args.through_ae}: the autoencoder works at {avc.width}x{avc.height}, the classifier "
                                 f"reads {W}x{H} renders")
            fidelity = Fidelity()
            source = through(source, ae, round_trip, fidelity)
            desc = (f"rendered clips through the autoencoder {args.through_ae} (step {ae_state['step']}"
                    f"{', toy' if ae_state.get('toy') else ''})")
    else:
        from measure.generate import clip_chunks, guidance_to_use, is_flow_dit, load_generator, steps_to_use
        model, tok, info = load_generator(Path(args.model), dev)
        steps, steps_from = steps_to_use(args.steps, info)
        guidance, guidance_from = guidance_to_use(args.guidance, info)
        vc = model.cfg.video
        if (vc.height, vc.width) != (H, W):
            print(f"warning: the model makes {vc.width}x{vc.height}, the classifier was trained on {W}x{H} renders")
        chunks = clip_chunks(model, frames / FPS)
        chunk = 4 * model.cfg.dit.chunk_frames
        cut = sum(tok.is_cut(e["prompt"]) for e in entries)
        guided = f", guidance {guidance:g} ({guidance_from})" if guidance != 1.0 else ""
        desc = (f"{info['id']} ({info['source']}, trained={info['trained']}), {steps} Euler steps "
                f"({steps_from}){guided}, {chunks} chunks; {cut} of {len(entries)} prompts longer than the "
                f"{model.cfg.text.max_text_tokens} tokens it reads")
        partial = PartialReadings(partial_path(out), {
            "model": str(Path(args.model).resolve()), "clips_from": desc, "dit_step": info.get("dit_step"), "ae_step": info.get("ae_step"),
            "manifest_sha256": info.get("manifest_sha256"), "seeds": [e["seed"] for e in entries],
            "classifier": str(Path(args.classifier).resolve()), "classifier_step": cstate["step"],
            "frames": frames})
        done = partial.done_for([e["prompt"] for e in entries])
        if partial.discarded:
            print(f"{partial.path}: readings {partial.discarded}; starting over", flush=True)
        if done:
            print(f"going on from the {done} of {len(entries)} clips read before ({partial.path}; delete it to "
                  "start over)", flush=True)
        source = generated(entries[done:], model, tok, chunks, steps, args.batch, frames, guidance, is_flow_dit(info))
    clips = list(partial.clips) if partial else []
    for video in source:
        batch = read_clips(clf, video)
        if partial:
            partial.add(batch, [e["prompt"] for e in entries[len(clips):len(clips) + len(batch)]])
        clips += batch
        took = time.time() - t0
        left = took / (len(clips) - done) * (len(entries) - len(clips))
        print(f"{len(clips)} of {len(entries)} clips read, {took:.0f} s this run, about {left:.0f} s to go",
              flush=True)
    t_clips = time.time() - t0
    print(f"rendering and reading {len(entries)} fresh clips of the same prompts (the real side of the Fréchet "
          "distance and the flicker floor)", flush=True)
    fresh = [c for video in rendered(entries, RESEED, H, W, args.batch, dev) for c in read_clips(clf, video)]
    r = summarise(clips, fresh, entries, chunk)
    if fidelity is not None:
        r["autoencoder"] = {"path": str(args.through_ae), "step": ae_state["step"], **fidelity.summary()}
    r.update({"mode": mode, "clips_from": desc,
              "model": None if args.reference else str(args.model), "classifier": str(args.classifier),
              "classifier_step": cstate["step"], "classifier_toy": cstate.get("toy"), "seconds": frames / FPS,
              "frames": frames, "size": [W, H], "steps": None if args.reference else steps,
              "guidance": None if args.reference else guidance,
              "prompts_cut": None if args.reference else cut,
              "feature_dim": clf.cfg.features, "device": str(dev),
              "seconds_taken": {"clips": round(t_clips, 1), "total": round(time.time() - t0, 1)},
              "clips_read_before": done,
              "per_prompt": [{"prompt": e["prompt"], "heldout": e["heldout"],
                              "pred": {a: ATTRS[a][c["pred"][a]] for a in ATTRS},
                              "persistence": float((c["subject_frames"] == ATTRS["subject"].index(e["attrs"]["subject"])).mean()),
                              "flicker": float(np.mean(c["flicker"]))}
                             for e, c in zip(entries, clips)]})
    head = (f"kinema eval: {desc}\nclassifier {args.classifier} (step {cstate['step']}{', toy' if cstate.get('toy') else ''}); "
            f"{len(entries)} prompts ({r['counts']['heldout']} held-out), {frames / FPS:g} s each at {W}x{H}, {dev}")
    print(table(r, head))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(r, indent=1) + "\n")
    save_features(out, [c["feature"] for c in clips], [c["feature"] for c in fresh], [e["prompt"] for e in entries])
    if partial:
        partial.remove()
    print(f"wrote {out} and its clip features ({time.time() - t0:.1f} s)")
    return r


if __name__ == "__main__":
    main()
