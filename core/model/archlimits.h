#pragma once
// One set of architecture limits for every source of a model's configuration (config.json, GGUF keys,
// names of safetensors tensors). A few hundred bytes of hostile metadata can otherwise claim 2^32 layers
// or 4096 experts in 1024 layers and make estimates spin or derive millions of tensors. Each limit is far
// above any real model (docs/reliability.md lists them with the largest real values).

#include "core/model/model.h"

#include <string>

namespace qs {

struct ArchitectureLimits {
    static constexpr uint32_t layers = 1024;           // largest real: ~160
    static constexpr uint32_t hiddenSize = 1u << 17;   // largest real: ~25,600
    static constexpr uint32_t intermediateSize = 1u << 20;
    static constexpr uint32_t heads = 4096;            // largest real: 128
    static constexpr uint32_t headDim = 8192;          // largest real: 256 (576 with MLA)
    static constexpr uint32_t vocabSize = 1u << 23;    // largest real: ~260K
    static constexpr uint64_t contextLength = 1ull << 40; // largest real: 10M (2^23); bounds arithmetic only
    static constexpr uint32_t experts = 1024;          // largest real: 384
    // Expert tensors scale with layers x experts: bounds the derived tensor count and the work.
    static constexpr uint64_t layerExperts = 1u << 17; // largest real: 61 x 384 = 23,424
};

// Checks a configuration against the limits and its own consistency: KV heads at most the attention heads
// and dividing them, experts used at most the experts. Zero (unknown) fields pass. Throws
// qs::FormatError(BadValue) naming `source` and the field, with the value and the limit.
void checkArchitecture(const ModelConfig& config, const std::string& source);

} // namespace qs
