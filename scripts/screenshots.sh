#!/usr/bin/env bash
# Regenerates docs/screenshots/*.png: the GUI renders itself offscreen (--screenshot) after opening the
# bundled sample model, one image per view. Usage: scripts/screenshots.sh [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-${BUILD_DIR:-$root/build}}
exe=$build/bin/quantscope
out=$root/docs/screenshots
sample=$root/resources/samples/stories260K/stories260K.gguf
if [[ ! -x $exe ]]; then
    echo "error: $exe not built (run: cmake --build $build --target quantscope)" >&2
    exit 1
fi
mkdir -p "$out"
# A throw-away settings folder: screenshots never depend on (or change) the user's window layout.
config=$(mktemp -d)
trap 'rm -rf "$config"' EXIT
export QT_QPA_PLATFORM=offscreen XDG_CONFIG_HOME=$config QUANTSCOPE_CACHE_DIR=$config/cache XDG_DATA_HOME=$config/data

shot() { # name view [extra args...]; MODEL=path overrides the sample
    local name=$1 view=$2
    shift 2
    "$exe" "${MODEL:-$sample}" --screenshot "$out/$name.png" --view "$view" --size 1400x860 "$@"
    echo "wrote docs/screenshots/$name.png"
}

shot main-window tensors
shot histogram tensors --select 'blk\.2\.ffn_down'
shot statistics statistics --select 'blk\.1\.attn_q'
shot depth depth --select 'blk\.3\.ffn_down'
shot histogram-grid tensors --select 'blk\.0\.attn_q' --grid Q4_K --log-y --symlog
shot plan plan --select 'blk\.0\.ffn_down'
MODEL=$root/resources/samples/stories260K/hf-bf16-sharded shot sharded-safetensors tensors --select 'layers\.3\.mlp\.down_proj'
MODEL=$root/tests/data/hdf5/keras_model.h5 shot keras-h5 tensors --select 'conv2d/kernel'
shot budget-dialog plan --budget-dialog
shot sensitivity sensitivity --select 'blk\.2\.attn_q' --grid Q8_0 --size 1400x1000
# Planning a real-sized model from its architecture alone (no weights): Llama-3-8B with the Q4_K_M preset.
MODEL=$root/resources/samples/configs/llama-3-8b/config.json shot plan-llama3-8b plan --select 'layers\.0\.self_attn\.q_proj'
# The Quantize dialog after a run of the sample to GGUF with the default Q4_K_M plan (into a temporary folder).
shot quantize-dialog plan --quantize-dialog
# File › Compare With…: the sample against a Q8_0 copy, one tensor's difference histogram (from the GUI test).
QS_COMPARE_SCREENSHOT=$out/compare-dialog.png "$build/tests/gui_tst_comparedialog" >/dev/null
echo "wrote docs/screenshots/compare-dialog.png"
# Measured ΔKL on the Sensitivity tab, and a plan's predicted against measured KL on the Evaluate tab.
QS_KL_SCREENSHOTS=$out "$build/tests/gui_tst_sensitivity" measuredKlFeedsTheFit >/dev/null
echo "wrote docs/screenshots/sensitivity-kl.png docs/screenshots/evaluate-predicted.png"
# The Evaluate tab after evaluating three plans: the GUI test runs them and grabs the window.
QS_EVALUATE_SCREENSHOT=$out/evaluate.png QS_METHODS_SCREENSHOT=$out/evaluate-methods.png \
    "$build/tests/gui_tst_evaluatepanel" >/dev/null
echo "wrote docs/screenshots/evaluate.png docs/screenshots/evaluate-methods.png"
# Analysis › Calibrate…, then the channel view's Input activations of blk.1.ffn_down (from the GUI test).
QS_CALIBRATION_SCREENSHOT=$out/channel-activations.png "$build/tests/gui_tst_calibration" >/dev/null
echo "wrote docs/screenshots/channel-activations.png"
# Fit to Budget › GPU (with KV cache): Llama-3.1-8B's config on an RTX 3060 at 32k context (from the GUI test).
QS_GPUFIT_SCREENSHOT=$out/gpu-fit.png "$build/tests/gui_tst_gpufitdialog" >/dev/null
echo "wrote docs/screenshots/gpu-fit.png"
