#pragma once
// One plan, several rounding methods, one table: quantizes the plan with round-to-nearest, GPTQ and AWQ (or
// any subset) and evaluates each result against the original on the same text, so a user sees in one run
// what the activation-aware methods buy for this plan (perplexity, KL divergence, same top token).
//
// Each method is a real quantize run (core/quant/quantize.h) into a private temporary folder — GGUF for a GGUF
// model, a fake-quant checkpoint for a safetensors model — evaluated as a quantized file (EvalParams::
// quantizedModel) and then deleted, so the numbers are those of the file a user would write. The plan's tier
// methods are replaced by the method under test for every tier. The original's distributions are computed
// once and shared by every evaluation. A method the plan or the target cannot use (e.g. GPTQ on a format it
// cannot produce) is reported with the reason and the others still run; a cancel ends the whole job.

#include "core/infer/evaluate.h"
#include "core/plan/plan.h"
#include "core/quant/method.h"
#include "core/util/job.h"

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace qs {

class Model;

struct MethodComparisonParams {
    std::shared_ptr<const Model> model;
    Plan plan;
    std::vector<QuantMethod> methods{QuantMethod::Rtn, QuantMethod::Gptq, QuantMethod::Awq};
    // Calibration of GPTQ and AWQ (a text file, as quantize --calibration).
    std::filesystem::path calibrationFile;
    uint32_t calibrationChunks = 8;
    uint32_t calibrationCtx = 0;
    // Evaluation (as EvalParams): text or textFile, ctx, chunks.
    std::string text;
    std::filesystem::path textFile;
    uint32_t ctx = 0;
    uint32_t maxChunks = 0;
    bool llamaCppActivations = false; // EvalParams::llamaCppActivations
    std::filesystem::path workDir; // where the temporary outputs go; empty: the system's temporary folder
    unsigned threads = 0;
    bool allowRequantize = true; // a GGUF model is usually already quantized (Q8_0)
    std::shared_ptr<const EvalBaseline> baseline;
};

struct MethodOutcome {
    QuantMethod method = QuantMethod::Rtn;
    std::string error; // why the method was not evaluated (refused or failed); empty when it ran
    EvalResult eval;
    double quantizeSeconds = 0;
    uint64_t weightBytes = 0; // tensor data written
    bool ok() const { return error.empty(); }
};

struct MethodComparisonResult {
    std::string target; // "gguf" or "fake-quant"
    std::vector<MethodOutcome> outcomes; // in the order of params.methods
    std::shared_ptr<const EvalBaseline> baseline;
};

// Throws qs::Error(BadValue) without a model or methods; CancelledError when cancelled.
MethodComparisonResult compareMethods(const MethodComparisonParams& params, JobControl* job = nullptr);

class MethodComparisonJob final : public BasicJob<MethodComparisonParams, MethodComparisonResult> {
public:
    explicit MethodComparisonJob(MethodComparisonParams params);

protected:
    void execute(JobControl& control) override;
};

} // namespace qs
