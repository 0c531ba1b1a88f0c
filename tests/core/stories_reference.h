#pragma once
// The input of the sample's (stories260K) blk.0 attention computed by hand, for the calibration tests:
// RMSNorm(embedding row) · attn_norm in float64 for every token of `chunks` chunks of `ctx` tokens of the
// text, BOS (id 1) first in every chunk, as calibrate() runs them.
#include "core/infer/evaluate.h"
#include "core/infer/forward.h"
#include "core/model/model.h"

#include <cmath>
#include <string>
#include <vector>

namespace qstest {

// One vector of 64 values per token, chunk by chunk.
inline std::vector<std::vector<double>> storiesAttentionInputs(const qs::Model& model, const std::string& text,
                                                                uint32_t ctx, uint32_t chunks)
{
    const auto tokens = qs::evaluationTokens(model, text);
    const qs::TensorInfo* embT = model.find("token_embd.weight");
    std::vector<float> emb(embT->elements()), norm(64);
    model.decode(*embT, 0, emb.size(), emb.data());
    model.decode(*model.find("blk.0.attn_norm.weight"), 0, 64, norm.data());
    const double eps = qs::transformerConfig(model).rmsEps;
    std::vector<std::vector<double>> out;
    for (uint32_t c = 0; c < chunks; ++c)
        for (uint32_t j = 0; j < ctx; ++j) {
            const int32_t t = j == 0 ? 1 : tokens[c * ctx + j];
            const float* x = emb.data() + size_t(t) * 64;
            double ms = 0;
            for (int k = 0; k < 64; ++k)
                ms += double(x[k]) * x[k];
            const double scale = 1.0 / std::sqrt(ms / 64 + eps);
            std::vector<double> y(64);
            for (int k = 0; k < 64; ++k)
                y[size_t(k)] = x[k] * scale * norm[size_t(k)];
            out.push_back(std::move(y));
        }
    return out;
}

} // namespace qstest
