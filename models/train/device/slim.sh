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
# `on` also keeps home the tracked files no device call reads (STAY_HOME: the Rust parity fixtures'
# weights, the sample sheets), through a marked block in .git/info/exclude (which the device tool
# honours), so that a call carrying a DiT checkpoint and the classifier has room to spare.
set -euo pipefail
cd "$(dirname "$0")/../../.."
SHARDS=(models/kinema-tiny/dit-*.safetensors models/kinema-tiny/decoder-*.safetensors)
STAY_HOME=(models/fixtures/tiny/*.safetensors models/fixtures/*.safetensors models/kinema-tiny/card/samples.png
           models/train/world/samples/*.png)
EXCLUDE=.git/info/exclude
BEGIN="# slim.sh: tracked files kept home (slim.sh off removes this block)"
END="# slim.sh: end"
tracked() { git ls-files -- "${SHARDS[@]}" | wc -l; }
in_head() { git ls-tree --name-only HEAD -- models/kinema-tiny/ | grep -cE '/(dit|decoder)-[0-9]+\.safetensors$' || true; }
home_block() { [ -f "$EXCLUDE" ] && grep -qxF "$BEGIN" "$EXCLUDE"; }
drop_home_block() {
  if home_block; then
    awk -v b="$BEGIN" -v e="$END" '$0 == b { skip = 1 } !skip { print } $0 == e { skip = 0 }' "$EXCLUDE" >"$EXCLUDE.tmp"
    mv "$EXCLUDE.tmp" "$EXCLUDE"
  fi
}
report() {
  echo "shipped shards in the index: $(tracked) of $(in_head) in HEAD"
  if home_block; then echo "kept home: $(git ls-files -o -i --exclude-standard -- "${STAY_HOME[@]}" | wc -l) files"; fi
  bash models/train/device/carry.sh || true
}
case ${1:-status} in
  on)
    [ "$(in_head)" -gt 0 ] || { echo "slim: HEAD has no committed dit/decoder shards; nothing to do"; exit 0; }
    [ "$(tracked)" -gt 0 ] || { echo "slim: already on"; report; exit 0; }
    git rm -q --cached -- "${SHARDS[@]}"
    mapfile -t home < <(git ls-files -- "${STAY_HOME[@]}")
    if [ ${#home[@]} -gt 0 ]; then
      git rm -q --cached -- "${home[@]}"
      drop_home_block
      mkdir -p "$(dirname "$EXCLUDE")"
      { echo "$BEGIN"; printf '/%s\n' "${home[@]}"; echo "$END"; } >>"$EXCLUDE"
    fi
    echo "slim on: the shipped shards (and ${#home[@]} files no call reads) stay on disk but no longer travel." \
      "Commit nothing until 'slim.sh off'."
    report;;
  off)
    git reset -q -- "${SHARDS[@]}"
    drop_home_block
    git reset -q -- "${STAY_HOME[@]}" 2>/dev/null || git reset -q
    echo "slim off: the shipped shards and the files kept home are in the index again"
    report;;
  status) report;;
  *) echo "usage: slim.sh on|off|status" >&2; exit 2;;
esac
