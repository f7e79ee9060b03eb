#!/bin/bash
# Replays jobs/<name>.json (beside replay.sh and plan_exec.py of ../shared/tools/gpu_replay/) one after another; after each, every result so far is gathered into $OUT/<tag>.json
# (one file comes back even if the call is cut short). Usage: gpu_replay_batch.sh TAG NAME...
cd "$(dirname "$0")"; FINAL=$OUT; TAG=$1; shift; mkdir -p /tmp/res
for j in "$@"; do
  s=$(date +%s); OUT=/tmp/res bash replay.sh jobs/$j.json 2>&1 | tail -1 | cut -c1-160; echo "   $j took $(( $(date +%s) - s )) s"
  python3 -c "import json,glob; json.dump([json.load(open(f)) for f in sorted(glob.glob('/tmp/res/exec_*.json'))], open('$FINAL/$TAG.json','w'))"
done
