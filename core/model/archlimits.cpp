#include "core/model/archlimits.h"

#include "core/util/error.h"

namespace qs {

namespace {
void require(bool ok, const std::string& source, const char* field, const std::string& message)
{
    if (!ok)
        throw FormatError(ErrorCode::BadValue, source, field, std::nullopt, message);
}
std::string over(uint64_t value, uint64_t limit, const char* what)
{
    return std::to_string(value) + " " + what + " is beyond any real model (limit " + std::to_string(limit) + ")";
}
} // namespace

void checkArchitecture(const ModelConfig& c, const std::string& source)
{
    using L = ArchitectureLimits;
    require(c.layers <= L::layers, source, "layers", over(c.layers, L::layers, "layers"));
    require(c.hiddenSize <= L::hiddenSize, source, "hidden_size", over(c.hiddenSize, L::hiddenSize, "hidden size"));
    require(c.intermediateSize <= L::intermediateSize, source, "intermediate_size",
            over(c.intermediateSize, L::intermediateSize, "intermediate size"));
    require(c.heads <= L::heads, source, "attention_heads", over(c.heads, L::heads, "attention heads"));
    require(c.kvHeads <= L::heads, source, "kv_heads", over(c.kvHeads, L::heads, "KV heads"));
    require(c.headDim <= L::headDim, source, "head_dim", over(c.headDim, L::headDim, "head dimension"));
    require(c.vocabSize <= L::vocabSize, source, "vocab_size", over(c.vocabSize, L::vocabSize, "vocabulary entries"));
    require(c.contextLength <= L::contextLength, source, "context_length",
            over(c.contextLength, L::contextLength, "context length"));
    require(c.experts <= L::experts, source, "experts", over(c.experts, L::experts, "experts"));
    require(uint64_t(c.layers) * std::max(1u, c.experts) <= L::layerExperts, source, "experts",
            std::to_string(c.layers) + " layers x " + std::to_string(c.experts) +
                " experts is beyond any real model (limit " + std::to_string(L::layerExperts) + " expert layers)");
    if (c.heads > 0 && c.kvHeads > 0) {
        require(c.kvHeads <= c.heads, source, "kv_heads",
                "KV heads (" + std::to_string(c.kvHeads) + ") exceed the attention heads (" +
                    std::to_string(c.heads) + ")");
        require(c.heads % c.kvHeads == 0, source, "kv_heads",
                "KV heads (" + std::to_string(c.kvHeads) + ") do not divide the attention heads (" +
                    std::to_string(c.heads) + ")");
    }
    if (c.expertsUsed > 0)
        require(c.experts > 0 && c.expertsUsed <= c.experts, source, "experts_used",
                "experts used per token (" + std::to_string(c.expertsUsed) + ") exceed the experts (" +
                    std::to_string(c.experts) + ")");
}

} // namespace qs
