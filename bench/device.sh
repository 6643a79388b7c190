#!/usr/bin/env bash
# The GPU numbers of docs/benchmarks.md: bench.throughput for reach and pick_place, streaming rollout-only and
# end to end (flat layout), no rendering (MUJOCO_GL=disable: the machine has no libEGL), then one warm CLI run
# that loads the exported program the bench left in the compile cache. The machine's Python lacks MuJoCo: the
# wheels of ../shared/gpu-wheels are carried in .whl/ (see that folder's README), with isal's for Python 3.12
# (mjxgen.data.flat's deflate), fetched here by
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux2014_x86_64 -d .whl isal==1.9.1
# and mjxgen's own wheel (its kernels/ and pusht/ folders install as mjxgen.kernels and mjxgen.pusht, so the
# checkout itself is not an importable mjxgen), built here by
#   pip wheel --no-deps -w .whl .
#
#   bash bench/device.sh OUTDIR        (JSON and logs land in OUTDIR; each part has its own time limit)
#
# Environment knobs (defaults in brackets): REACH_BATCHES ["4096 16384 65536"], PICK_BATCHES ["4096 16384 65536"],
# EPISODES_PER_SLOT [2], E2E ["flat:lzf flat:gzip"], REACH_SKIP ["writer horizons startup"],
# PICK_SKIP ["writer horizons startup fixed native seed_style"], REACH_S [270], PICK_S [210], WARM_S [120]
# (0 skips the warm run).
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
read -r -a e2e <<<"${E2E:-flat:lzf flat:gzip}"
read -r -a reach_b <<<"${REACH_BATCHES:-4096 16384 65536}"
read -r -a pick_b <<<"${PICK_BATCHES:-4096 16384 65536}"
read -r -a reach_skip <<<"${REACH_SKIP:-writer horizons startup}"
read -r -a pick_skip <<<"${PICK_SKIP:-writer horizons startup fixed native seed_style}"
eps=${EPISODES_PER_SLOT:-2}
if [ "${REACH_S:-270}" != 0 ]; then
  timeout "${REACH_S:-270}" python3 -m bench.throughput --env reach --batches "${reach_b[@]}" --episodes-per-slot "$eps" \
    --e2e "${e2e[@]}" --skip "${reach_skip[@]}" --baseline-seconds 5 --native-batch 8192 \
    --json "$out/reach.json" >"$out/reach.log" 2>&1
  echo "reach: exit $?"
fi
if [ "${PICK_S:-210}" != 0 ]; then
  timeout "${PICK_S:-210}" python3 -m bench.throughput --env pick_place --batches "${pick_b[@]}" --episodes-per-slot "$eps" \
    --e2e "${e2e[@]}" --skip "${pick_skip[@]}" --native-batch 8192 \
    --json "$out/pick_place.json" >"$out/pick_place.log" 2>&1
  echo "pick_place: exit $?"
fi
if [ "${WARM_S:-120}" != 0 ]; then
  # The bench compiled (and exported) reach/scripted at B=4096, T=200 in another process: this run should load it.
  start=$EPOCHREALTIME
  timeout "${WARM_S:-120}" python3 -m mjxgen.reach --batch 4096 --episodes 8192 --layout flat --compression lzf \
    --no-progress --overwrite --output /tmp/warm.h5 >"$out/warm.log" 2>&1
  echo "warm CLI (reach, B=4096, 8192 episodes, flat/lzf): exit $?, $(python3 -c "print(f'{$EPOCHREALTIME - $start:.1f}')") s wall" \
    | tee -a "$out/warm.log"
  ls /tmp/mjxgen-cache/programs >>"$out/warm.log" 2>&1
fi
tail -n 30 "$out"/*.log
