#pragma once
// The tool a plan is made for, and what that tool can store: which formats it can express, which tensors
// its runtime fuses, and the format a tensor actually ends up in when its row does not fit a format's
// block (llama.cpp's fallback table). Presets, rules, fit to budget and the exporters all ask here, so that
// a plan never holds a format its target cannot write. See docs/plan-schema.md#targets.

#include "core/plan/modellayout.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace qs {

class QuantFormat;

// PlanJson is "any target": the plan JSON itself, whose only constraint is that each format can store its
// tensor's shape (llama.cpp's rules decide what a ggml type that cannot becomes).
enum class ExportTarget : uint8_t { LlamaCpp, GptqModel, LlmCompressor, CompressedTensors, PlanJson };
const char* exportTargetName(ExportTarget target); // "llamacpp", "gptqmodel", "llmcompressor", ...
std::optional<ExportTarget> exportTargetFromName(std::string_view name);
// The file name a target's output is usually saved as ("tensor-types.txt", "quantize_config.json", ...).
const char* exportDefaultFileName(ExportTarget target);

// Whether the target's runtime fuses q/k/v, gate/up and a layer's experts into one kernel, so that they
// must share a format: vLLM loads GPTQModel, llm-compressor and compressed-tensors checkpoints and fuses
// them; llama.cpp keeps every tensor separate (even its stacked experts are one tensor, one type).
bool targetFusesGroups(ExportTarget target);
// Whether the target's export needs at least one quantized (non-float) tensor: GPTQModel, llm-compressor
// and compressed-tensors describe a quantization, so an all-float plan has nothing to export.
bool targetNeedsQuantizedTensor(ExportTarget target);

// Why the target cannot express `format` on a tensor of `role`, independent of the shape; nullopt when it
// can. ("GPTQModel stores integer GPTQ weights only", "llama.cpp has no INT4-g128-asym type", ...)
std::optional<std::string> targetFormatProblem(ExportTarget target, const QuantFormat& format, TensorRole role);

// ---- llama.cpp's fallback table (src/llama-quant.cpp, tensor_type_fallback) ----
//
// When a type's block does not divide a row (ncols % block != 0), llama-quantize replaces it:
//   IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ4_XS -> IQ4_NL
//   Q2_K, Q3_K, TQ1_0, TQ2_0 -> Q4_0 (IQ4_NL before March 2026)
//   Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0
// and F16 when the replacement's 32-value block does not divide the row either. Every other type (Q8_0,
// Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, MXFP4) has no entry: llama-quantize stops with "no tensor type fallback
// is defined for type ...".
struct LlamaCppFallbackEntry {
    const char* from;
    const char* to;
};
// The table as data, in the order above.
const LlamaCppFallbackEntry* llamaCppFallbackTable(size_t* count);

// What llama-quantize stores for `format` on rows of `cols` values: `format` itself when its block
// divides the row, else the table's replacement (or F16), else nullopt (llama-quantize stops). Formats
// that are not ggml types are returned unchanged.
std::optional<std::string> llamaCppStoredType(const std::string& format, uint64_t cols);

// The format a tensor of a plan for `target` is stored in when `format` is asked for.
struct StorableFormat {
    std::string format; // empty: refused
    std::string reason; // why it differs from the request, or why it was refused; empty when unchanged
    bool changed() const { return !format.empty() && !reason.empty(); }
    bool refused() const { return format.empty(); }
};
// - the target cannot express the format at all (a ggml type for GPTQModel, INT4 for llama.cpp): refused;
// - the format cannot store the shape: for ggml types llama.cpp's fallback (or F16, llama.cpp's own last
//   resort, when it defines no fallback: an explicit F16 override that llama-quantize accepts); for the
//   Hugging Face targets the tensor stays in BF16 (listed in `ignore` / "-:" by the exporters);
// - Hugging Face targets keep embeddings in BF16 (no exporter quantizes them).
StorableFormat storableFormat(const std::string& format, const TensorInfo& tensor, ExportTarget target);

} // namespace qs
