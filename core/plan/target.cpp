#include "core/plan/target.h"

#include "core/quant/format.h"
#include "core/util/strings.h"

namespace qs {

const char* exportTargetName(ExportTarget target)
{
    switch (target) {
    case ExportTarget::LlamaCpp:
        return "llamacpp";
    case ExportTarget::GptqModel:
        return "gptqmodel";
    case ExportTarget::LlmCompressor:
        return "llmcompressor";
    case ExportTarget::CompressedTensors:
        return "compressed-tensors";
    case ExportTarget::PlanJson:
        return "json";
    }
    return "json";
}

std::optional<ExportTarget> exportTargetFromName(std::string_view name)
{
    const std::string n = lower(name);
    if (n == "llamacpp" || n == "llama.cpp" || n == "llama-cpp" || n == "gguf")
        return ExportTarget::LlamaCpp;
    if (n == "gptqmodel" || n == "gptq")
        return ExportTarget::GptqModel;
    if (n == "llmcompressor" || n == "llm-compressor")
        return ExportTarget::LlmCompressor;
    if (n == "compressed-tensors" || n == "compressedtensors" || n == "compressed_tensors" || n == "vllm")
        return ExportTarget::CompressedTensors;
    if (n == "json" || n == "plan" || n == "any")
        return ExportTarget::PlanJson;
    return std::nullopt;
}

const char* exportDefaultFileName(ExportTarget target)
{
    switch (target) {
    case ExportTarget::LlamaCpp:
        return "tensor-types.txt";
    case ExportTarget::GptqModel:
        return "quantize_config.json";
    case ExportTarget::LlmCompressor:
        return "recipe.yaml";
    case ExportTarget::CompressedTensors:
        return "quantization_config.json";
    case ExportTarget::PlanJson:
        return "plan.json";
    }
    return "plan.json";
}

bool targetFusesGroups(ExportTarget target)
{
    return target == ExportTarget::GptqModel || target == ExportTarget::LlmCompressor ||
           target == ExportTarget::CompressedTensors;
}

bool targetNeedsQuantizedTensor(ExportTarget target)
{
    return target == ExportTarget::GptqModel || target == ExportTarget::LlmCompressor ||
           target == ExportTarget::CompressedTensors;
}

namespace {

bool isHuggingFace(ExportTarget t)
{
    return t == ExportTarget::GptqModel || t == ExportTarget::LlmCompressor ||
           t == ExportTarget::CompressedTensors;
}

bool isGgmlType(const QuantFormat& f)
{
    const auto& tr = f.traits();
    return (tr.kind == FormatKind::Ggml || tr.kind == FormatKind::Mx) && tr.storage;
}

constexpr LlamaCppFallbackEntry kLlamaCppFallbacks[] = {
    {"IQ1_S", "IQ4_NL"}, {"IQ1_M", "IQ4_NL"}, {"IQ2_XXS", "IQ4_NL"}, {"IQ2_XS", "IQ4_NL"},
    {"IQ2_S", "IQ4_NL"}, {"IQ3_XXS", "IQ4_NL"}, {"IQ3_S", "IQ4_NL"}, {"IQ4_XS", "IQ4_NL"},
    {"Q2_K", "Q4_0"},    {"Q3_K", "Q4_0"},    {"TQ1_0", "Q4_0"},    {"TQ2_0", "Q4_0"},
    {"Q4_K", "Q5_0"},    {"Q5_K", "Q5_1"},    {"Q6_K", "Q8_0"},
};

} // namespace

const LlamaCppFallbackEntry* llamaCppFallbackTable(size_t* count)
{
    if (count)
        *count = std::size(kLlamaCppFallbacks);
    return kLlamaCppFallbacks;
}

std::optional<std::string> targetFormatProblem(ExportTarget target, const QuantFormat& format, TensorRole role)
{
    const auto& tr = format.traits();
    const bool unquantized = tr.kind == FormatKind::Float;
    switch (target) {
    case ExportTarget::PlanJson:
        return std::nullopt;
    case ExportTarget::LlamaCpp:
        if (isGgmlType(format) || (unquantized && tr.storage))
            return std::nullopt;
        return "llama.cpp has no " + format.name() + " type (only ggml block types, MXFP4, F16, BF16)";
    case ExportTarget::GptqModel:
        if (unquantized)
            return std::nullopt;
        if (tr.kind != FormatKind::Integer)
            return std::string("GPTQModel stores integer GPTQ weights only (no ggml, FP8 or NF4 types)");
        if (tr.groupSize == 0)
            return std::string("GPTQ has no per-tensor scale: use a group size or per-channel");
        if (tr.bits != 2 && tr.bits != 3 && tr.bits != 4 && tr.bits != 8)
            return std::string("GPTQModel packs 2, 3, 4 or 8 bits");
        if (role == TensorRole::Embedding)
            return std::string("GPTQModel does not quantize embeddings: keep them in BF16/F16");
        return std::nullopt;
    case ExportTarget::LlmCompressor:
    case ExportTarget::CompressedTensors:
        if (unquantized)
            return std::nullopt;
        if (role == TensorRole::Embedding)
            return std::string("only Linear layers are quantized: keep embeddings in BF16/F16");
        if (tr.kind == FormatKind::Integer ||
            (tr.kind == FormatKind::Fp8 && format.name().starts_with("FP8-E4M3")))
            return std::nullopt;
        return std::string(
            "compressed-tensors has integer and FP8 (E4M3) schemes only, no ggml, NF4 or E5M2 types");
    }
    return std::nullopt;
}

std::optional<std::string> llamaCppStoredType(const std::string& format, uint64_t cols)
{
    auto f = findFormat(format);
    if (!f || !isGgmlType(*f))
        return f ? f->name() : format;
    const uint64_t block = dtypeInfo(*f->traits().storage).blockElements;
    if (cols > 0 && cols % block == 0)
        return f->name();
    for (const auto& e : kLlamaCppFallbacks) {
        if (f->name() != e.from)
            continue;
        auto to = findFormat(e.to);
        const uint64_t b = to && to->traits().storage ? dtypeInfo(*to->traits().storage).blockElements : 32;
        return cols > 0 && cols % b == 0 ? std::string(e.to) : std::string("F16");
    }
    return std::nullopt;
}

StorableFormat storableFormat(const std::string& format, const TensorInfo& tensor, ExportTarget target)
{
    auto f = findFormat(format);
    if (!f)
        return {{}, "unknown format '" + format + "'"};
    const bool quantized = f->traits().kind != FormatKind::Float;
    if (isHuggingFace(target) && quantized && planRole(tensor).role == TensorRole::Embedding)
        return {"BF16", std::string(exportTargetName(target)) + " quantizes Linear layers only: the "
                                                                "embedding stays in BF16"};
    if (auto problem = targetFormatProblem(target, *f, planRole(tensor).role))
        return {{}, *problem};
    const uint64_t rows = tensor.matrixRows(), cols = tensor.matrixColumns();
    if (f->supports(rows, cols))
        return {f->name(), {}};
    const std::string why = f->name() + " cannot store rows of " + std::to_string(cols) + " values";
    if (isGgmlType(*f)) {
        if (auto stored = llamaCppStoredType(f->name(), cols))
            return {*stored, why + ": llama.cpp's fallback is " + *stored};
        return {"F16", why + " and llama.cpp defines no fallback for it: kept in F16"};
    }
    if (!quantized) // a float format that cannot store a shape: an empty tensor
        return {{}, why};
    return {"BF16", why + ": kept in BF16"};
}

} // namespace qs
