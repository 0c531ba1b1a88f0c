#pragma once
// Whole-model AWQ (core/quant/awq.h) on the forward pass's layer-wise path.
//
// The calibration text is cut into chunks as calibrate() does (evaluate.h: calibrationChunks). Layer by
// layer: the layer's linear inputs are captured, each group (q/k/v, o, gate/up, down) gets its scales and
// clipping searched for the formats the plan gives its tensors, the scales are folded into the preceding op
// (attn_norm, v's rows, ffn_norm, up's rows), the layer's weights are overridden in the forward pass with the
// quantized-then-dequantized transformed weights (and the modified norms), and the layer is run again to
// produce the next layer's input, so that later layers calibrate on what the quantized model computes.
//
// A group is scaled only when the scales can be folded: every tensor of the group is planned (it will be
// re-quantized anyway) and so is the previous linear layer it folds into (v for o, up for down); o under
// grouped-query attention needs tied scales (tieQueryHeads, on by default: o's activation statistic is
// averaged over the query heads of each kv head). Otherwise the group is not scaled (its integer-format
// tensors still get the clip search) and the report says why.

#include "core/plan/plan.h"
#include "core/quant/awq.h"
#include "core/util/job.h"

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace qs {

class Model;

struct AwqModelParams {
    std::shared_ptr<const Model> model;
    Plan plan;        // the target formats (Plan::formatOf); unplanned tensors are kept
    std::string text; // calibration text (UTF-8), else textFile, else tokens
    std::filesystem::path textFile;
    std::vector<int32_t> tokens;
    uint32_t ctx = 0;             // 0: min(512, the model's maximum)
    uint32_t maxChunks = 8;       // calibration sequences (0: every whole chunk)
    uint32_t sampleTokens = 1024; // tokens of X used for the output error; mean |x| uses all
    bool tieQueryHeads = true;    // see the file comment
    AwqOptions options;
};

struct AwqGroupReport {
    uint32_t layer = 0;
    std::string group; // "qkv", "o", "gate/up", "down"
    std::vector<std::string> tensors;
    std::string format;     // the group's (first) planned format
    bool scaled = false;    // scales searched and folded
    std::string foldedInto; // the tensor holding 1/s when scaled
    std::string note;       // why not scaled / not clipped; empty when both happened
    double alpha = 0;
    bool duo = false; // AutoAWQ's duo family (awq.h)
    int clippedTensors = 0;
    double errorRtn = 0;   // ||Q(W)X − WX||² summed over the group (calibration sample)
    double errorAfter = 0; // with AWQ
};

struct AwqModelResult {
    // The model with the transformed weights of every tensor AWQ changed (scaled and clipped linear weights,
    // to be quantized with the plan's format; divided norms and previous layers), in the tensors' own float
    // dtype (F32 for quantized originals). Built layer by layer (core/model/overlay.h): the new weights live
    // in unlinked temporary files, not in memory.
    std::shared_ptr<const Model> transformed;
    std::vector<std::string> transformedTensors; // the tensors AWQ changed, layer by layer
    std::vector<AwqGroupReport> groups;
    std::vector<std::string> notes; // every place where folding or clipping was not possible
    uint32_t ctx = 0;
    uint32_t chunks = 0;
    size_t tokens = 0;
    double seconds = 0;
};

// Throws qs::Error(BadValue) for an unusable text or plan, qs::Error(Unsupported) for an architecture the
// forward pass does not run, qs::CancelledError when cancelled (checked between grid points and layers).
AwqModelResult runAwq(const AwqModelParams& params, JobControl* job = nullptr);

class AwqJob final : public BasicJob<AwqModelParams, AwqModelResult> {
public:
    explicit AwqJob(AwqModelParams params);

protected:
    void execute(JobControl& control) override;
};

} // namespace qs
