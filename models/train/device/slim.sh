#!/usr/bin/env bash
# Run HERE, before and after the device calls of a training or eval session.
#   bash models/train/device/slim.sh on       # before the calls
#   bash models/train/device/slim.sh off      # after them: the index as committed again
#   bash models/train/device/slim.sh status
# Why: the device tool sends tracked files plus untracked files git does not ignore, 64 MiB in
# all. The shipped, trained dit/decoder shards (56 MB) are tracked, so with them a call has no
# room for the text shards (45 MB) the trainer and the eval need. `on` takes them out of git's
# index only (`git rm --cached`): the files stay on disk and, being matched by .gitignore, stop
# travelling. `off` puts them back (`git reset`), exactly as in HEAD. Commit nothing while on
# (the commit would delete the shipped weights); `status` says which state the checkout is in.
set -euo pipefail
cd "$(dirname "$0")/../../.."
SHARDS=(models/kinema-tiny/dit-*.safetensors models/kinema-tiny/decoder-*.safetensors)
tracked() { git ls-files -- "${SHARDS[@]}" | wc -l; }
in_head() { git ls-tree --name-only HEAD -- models/kinema-tiny/ | grep -cE '/(dit|decoder)-[0-9]+\.safetensors$' || true; }
report() {
  echo "shipped shards in the index: $(tracked) of $(in_head) in HEAD"
  bash models/train/device/carry.sh || true
}
case ${1:-status} in
  on)
    [ "$(in_head)" -gt 0 ] || { echo "slim: HEAD has no committed dit/decoder shards; nothing to do"; exit 0; }
    git rm -q --cached -- "${SHARDS[@]}"
    echo "slim on: the shipped shards stay on disk but no longer travel. Commit nothing until 'slim.sh off'."
    report;;
  off)
    git reset -q -- "${SHARDS[@]}"
    echo "slim off: the shipped shards are in the index again"
    report;;
  status) report;;
  *) echo "usage: slim.sh on|off|status" >&2; exit 2;;
esac
