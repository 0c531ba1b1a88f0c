#pragma once
// Quantized Hugging Face checkpoints written from a safetensors model and a plan (docs/checkpoints.md):
// - compressed-tensors (what vLLM loads): pack-quantized INT4/INT8 (weight_packed int32, weight_scale F32,
//   weight_zero_point for asymmetric schemes, weight_shape) and float-quantized FP8 E4M3 (weight + F32
//   weight_scale); config.json gets the `quantization_config` of exportPlan(CompressedTensors);
// - GPTQ (AutoGPTQ / GPTQModel "gptq" v1 format, loaded by transformers, GPTQModel and vLLM): qweight,
//   qzeros (zero - 1), fp16 scales, g_idx; quantize_config.json and `quantization_config` are the
//   GPTQModel export, with `dynamic` overrides for mixed bits;
// - fake-quant: every planned tensor replaced by its planned format's round trip, in the input's dtype.
// Integer codes are round-to-nearest exactly as core/quant/int_quant.h (GPTQ's RTN grid); FP8 codes as
// core/quant/fp8.h. Tensors the plan leaves alone are copied byte for byte; tensors planned to a 16-bit float
// format are converted to it. The output mirrors the input's sharding; every file (shards, index,
// config.json, quantize_config.json, the tokenizer and other files copied from the model folder) is written
// through one AtomicFileSet: the folder holds the whole checkpoint or nothing.

#include "core/model/model.h"
#include "core/plan/plan.h"
#include "core/quant/tensorreport.h"

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace qs {

class JobControl;

// The checkpoint kinds written here (the quantize job maps its target onto these).
enum class CheckpointKind : uint8_t { CompressedTensors, Gptq, FakeQuant };
const char* checkpointKindName(CheckpointKind kind); // "compressed-tensors", "gptq", "fake-quant"

struct CheckpointWriteReport {
    uint64_t bytesWritten = 0;         // every file of the output folder
    uint64_t predictedWeightBytes = 0; // sum of plannedBytes() over the model's tensors
    uint64_t weightBytesWritten = 0;   // safetensors data regions actually written
    std::vector<std::filesystem::path> files;
    std::vector<std::string> warnings;
    std::vector<QuantizedTensor> tensors; // one per model tensor, in the model's order
};

// Exact bytes of the safetensors tensors `kind` writes for one model tensor under the plan (what
// predictedWeightBytes sums): see predictedTensorBytes() in core/quant/quantize.h.
uint64_t checkpointTensorBytes(CheckpointKind kind, const Plan& plan, const TensorInfo& tensor);

// Everything that stops `kind` from writing the plan, one message per problem naming the tensor, checked
// before the first byte: assignments to tensors the model lacks, unknown formats, shapes a format cannot
// hold, formats the target has no layout for, the target's own export rules (fused q/k/v, embeddings).
std::vector<std::string> checkpointProblems(CheckpointKind kind, const Model& model, const Plan& plan);

// Integer codes computed elsewhere (GPTQ, core/infer/gptqmodel.h) for one tensor, written instead of the
// round-to-nearest codes: value = scale * (q - zero) with the grid of column i's group.
struct PrecomputedIntCodes {
    uint64_t rows = 0, cols = 0, groups = 0, groupLen = 0; // groupLen == cols for per channel
    std::vector<uint8_t> q;    // rows x cols
    std::vector<float> scale;  // rows x groups
    std::vector<uint8_t> zero; // rows x groups
    std::vector<int32_t> gIdx; // cols: the group of each column (act-order); empty: column / groupLen
};
// By tensor name. A tensor without an entry is rounded to nearest as usual.
using PrecomputedCodes = std::map<std::string, std::shared_ptr<const PrecomputedIntCodes>>;

// outDir: a folder to create (it must not exist, or be empty, and must not be the model's folder).
// Throws qs::Error(BadValue) listing checkpointProblems(), qs::Error(Io) when the disk is too small or a
// write fails, qs::CancelledError when cancelled; in every case no output file is left behind. codes: see
// PrecomputedIntCodes; qs::Error(BadValue) when an entry does not fit its tensor and planned format, or
// (compressed-tensors, which has no g_idx) when its groups are not consecutive columns.
CheckpointWriteReport writeCompressedTensors(const Model& model, const Plan& plan,
                                             const std::filesystem::path& outDir, JobControl* job,
                                             const PrecomputedCodes* codes = nullptr);
CheckpointWriteReport writeGptqCheckpoint(const Model& model, const Plan& plan,
                                          const std::filesystem::path& outDir, JobControl* job,
                                          const PrecomputedCodes* codes = nullptr);
// With codes: GPTQ's dequantized values (scale * (code - zero)) for those tensors, in the input's dtype.
CheckpointWriteReport writeFakeQuant(const Model& model, const Plan& plan,
                                     const std::filesystem::path& outDir, JobControl* job,
                                     const PrecomputedCodes* codes = nullptr);

} // namespace qs
