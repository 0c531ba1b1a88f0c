#pragma once
// Hands a plan to the tool that will do the quantizing, in that tool's own syntax (docs/exports.md):
// llama.cpp's llama-quantize --tensor-type-file (every tensor, head and embedding included, so that
// llama.cpp's fallback step sees them all),
// GPTQModel's quantize_config.json with `dynamic` per-module overrides, an llm-compressor recipe YAML, a
// compressed-tensors `quantization_config`, and the native plan JSON.
//
// A target that cannot express the plan refuses it with ExportError, listing every offending tensor and
// why (GPTQModel has no Q4_K, llama.cpp has no INT4-g128, vLLM-style targets need fused tensors to agree).

#include "core/plan/plan.h"
#include "core/plan/target.h"
#include "core/util/error.h"

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qs {

// ExportTarget and its names: core/plan/target.h.

struct ExportProblem {
    std::string tensor;
    std::string format;
    std::string reason;
};

class ExportError : public Error {
public:
    ExportError(ExportTarget target, std::vector<ExportProblem> problems);
    ExportTarget target() const { return m_target; }
    const std::vector<ExportProblem>& problems() const { return m_problems; }

private:
    ExportTarget m_target;
    std::vector<ExportProblem> m_problems;
};

struct ExportResult {
    std::string text;                  // the file's contents
    std::vector<std::string> commands; // how to use it (e.g. the llama-quantize command line)
    std::vector<std::string> notes;    // caveats worth telling the user
};

// Throws ExportError when the target cannot express the plan.
ExportResult exportPlan(const Plan& plan, ExportTarget target);
// Writes atomically and durably (core/util/atomicfile.h). Throws qs::Error(Io) with the reason.
void writeExport(const ExportResult& result, const std::filesystem::path& path);

// Name mapping between Hugging Face module names and GGUF tensor names for the Llama-family layout
// (embed_tokens <-> token_embd, layers.N.self_attn.q_proj <-> blk.N.attn_q, mlp.down_proj <-> ffn_down,
// lm_head <-> output, Mixtral experts <-> stacked ffn_*_exps). nullopt when the tensor has no counterpart.
std::optional<std::string> ggufTensorName(std::string_view tensorName);
std::optional<std::string> hfModuleName(std::string_view tensorName); // without ".weight"

} // namespace qs
