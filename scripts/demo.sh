#!/usr/bin/env bash
# Set up, then the main job on a default photo folder: index it, then ask who looks like whom.
# Photos: the real photos that installed packages ship (scikit-image, matplotlib), plus the shared face
# galleries in ../shared/data/gallery when they are there.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
L=.venv/bin/lookalike
export LOOKALIKE_INDEX_HOME="${LOOKALIKE_INDEX_HOME:-$PWD/indexes}"  # the demo keeps its index in the checkout
$L sample-photos out/demo-photos
$L index out/demo-photos --name demo
shared=${LOOKALIKE_DATA:-../shared/data}/gallery
if [ -d "$shared" ]; then
  $L index "$shared" --name demo
fi
$L info demo
query=out/demo-photos/grace_hopper/grace_hopper.jpg
[ -d "$shared/lfw10/Tony_Blair" ] && query="$shared/lfw10/Tony_Blair/Tony_Blair_0001.jpg"
$L query "$query" -k 5 --index demo --html out/demo-query.html
$L query "$query" -k 5 --index demo --mode identities
