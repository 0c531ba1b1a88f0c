#pragma once
// `quantize --method gptq`: the calibration pass (core/infer/gptqmodel.h) that runs before the quantize job
// and hands it GPTQ's codes. Kept apart from cmd_quantize.cpp so the method options stay in one place.
#include "core/quant/quantize.h"

#include <QCommandLineParser>
#include <QJsonArray>

namespace cli {

// Adds --method, --calibration, --calibration-vocab, --calibration-ctx, --calibration-sequences, --act-order, --static-groups,
// --damp.
void addGptqOptions(QCommandLineParser& parser);
// With --method gptq: checks the options, runs GPTQ over the calibration text on params.model / params.plan
// and sets params.precomputedCodes; `summary` gets one JSON object per quantized tensor (proxy errors).
// Returns 0, or the exit code of a failure / cancel. Without --method (or --method rtn) it does nothing.
int runGptqPass(const QCommandLineParser& parser, qs::QuantizeParams& params, QJsonArray& summary);

} // namespace cli
