#!/usr/bin/env bash
# The GPU numbers of the README (issue 16): bench.throughput for reach and pick_place at B = 4096, 16384 and
# 65536, streaming rollout-only and end to end (flat layout, lzf and gzip), no rendering (MUJOCO_GL=disable: the
# machine has no libEGL), on a machine whose Python lacks
# MuJoCo: the wheels of ../shared/gpu-wheels are carried in .whl/ (see that folder's README), with isal's for
# Python 3.12 (mjxgen.flat's deflate), fetched here by
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux2014_x86_64 -d .whl isal==1.9.1
#
#   bash bench/device.sh OUTDIR        (JSON and logs land in OUTDIR; each env has its own time limit)
set -u
out=${1:?usage: bash bench/device.sh OUTDIR}
mkdir -p "$out"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export MUJOCO_GL=disable PYTHONUNBUFFERED=1 MJXGEN_COMPILE_CACHE=/tmp/mjxgen-cache
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import jax, mujoco; print(jax.__version__, jax.devices(), mujoco.__version__)" | tee -a "$out/gpu.txt"
common=(--batches 4096 16384 65536 --episodes-per-slot 2 --e2e flat:lzf flat:gzip --skip writer horizons startup)
timeout "${REACH_S:-270}" python3 -m bench.throughput --env reach "${common[@]}" --baseline-seconds 5 --native-batch 8192 \
  --json "$out/reach.json" >"$out/reach.log" 2>&1
echo "reach: exit $?"
timeout "${PICK_S:-210}" python3 -m bench.throughput --env pick_place "${common[@]}" --skip writer horizons startup fixed --native-batch 8192 \
  --json "$out/pick_place.json" >"$out/pick_place.log" 2>&1
echo "pick_place: exit $?"
tail -n 30 "$out/reach.log" "$out/pick_place.log"
