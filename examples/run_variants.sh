#!/usr/bin/env bash
# Run each example variant with gandoctor attached, save its console output, and analyze both
# the run log and the console output with the CLI. Usage: examples/run_variants.sh OUT_ROOT [SEED]
# (one BLAS/OpenMP thread: on a small shared CPU more threads only fight each other).
set -u
root=${1:-runs/examples}; seed=${2:-0}
py=${PYTHON:-python}
export OMP_NUM_THREADS=1
mkdir -p "$root"
run() {  # script variant steps
    local name="$1-$2-s$seed" out="$root/$1-$2-s$seed"
    echo "== $name"
    "$py" "examples/$1.py" --steps "$3" --out "$out" --variant "$2" --seed "$seed" > "$out.console.log" 2> "$out.stderr"
    "$py" -m gandoctor analyze "$out" --json > "$out.analyze_log.json" 2> "$out.analyze_log.stderr"
    "$py" -m gandoctor analyze "$out.console.log" --format console --json > "$out.analyze_console.json" 2> "$out.analyze_console.stderr"
}
for v in ${MLP_VARIANTS-healthy collapse glr tinyz ddom explode}; do run pytorch_gan_mlp "$v" "${MLP_STEPS:-1500}"; done
for v in ${DCGAN_VARIANTS-healthy collapse glr hot ddom explode}; do run pytorch_examples_dcgan "$v" "${DCGAN_STEPS:-800}"; done
for v in ${WGAN_VARIANTS-healthy nogp collapse}; do run wgan_gp "$v" "${WGAN_STEPS:-3000}"; done
for v in ${CGAN_VARIANTS-healthy collapse ddom}; do run cgan "$v" "${CGAN_STEPS:-1500}"; done
for v in ${PGDCGAN_VARIANTS-healthy ddom collapse explode lsgan}; do run pytorch_gan_dcgan "$v" "${PGDCGAN_STEPS:-800}"; done
for v in ${PGWGAN_VARIANTS-healthy noclip collapse}; do run pytorch_gan_wgan "$v" "${PGWGAN_STEPS:-3000}"; done
