#pragma once
// Independent reference for the evaluation and ΔKL tests: log-softmax of a logits column in float64 and
// llama-perplexity's scoring loop written out.
#include "core/infer/forward.h"
#include "core/plan/plan.h"

#include <Eigen/Core>
#include <memory>
#include <algorithm>
#include <cmath>
#include <vector>

inline std::vector<double> logSoftmax(const Eigen::MatrixXf& logits, Eigen::Index col)
{
    const Eigen::Index n = logits.rows();
    double mx = -INFINITY;
    for (Eigen::Index i = 0; i < n; ++i)
        mx = std::max(mx, double(logits(i, col)));
    double s = 0;
    for (Eigen::Index i = 0; i < n; ++i)
        s += std::exp(double(logits(i, col)) - mx);
    std::vector<double> out(static_cast<size_t>(n));
    for (Eigen::Index i = 0; i < n; ++i)
        out[size_t(i)] = double(logits(i, col)) - mx - std::log(s);
    return out;
}

struct Reference {
    double ppl = 0, pplQ = 0, kldMean = 0, kldMax = 0, sameTop = 0;
    size_t positions = 0;
};

// llama-perplexity's loop written out: chunk i = tokens[i*ctx, (i+1)*ctx), BOS in front, score the second
// half; chunks firstChunk .. firstChunk+chunks-1. Two full forward passes (KV cache), float64 statistics.
inline Reference reference(const std::shared_ptr<const qs::Model>& model, const std::vector<int32_t>& tokens,
                    uint32_t ctx, uint32_t chunks, int32_t bos, const qs::Plan* plan, uint32_t firstChunk = 0)
{
    qs::Transformer original(model);
    qs::ForwardOptions o;
    o.plan = plan;
    qs::Transformer quantized(model, o);
    Reference r;
    double nll = 0, nllQ = 0, kld = 0;
    size_t same = 0;
    for (uint32_t c = firstChunk; c < firstChunk + chunks; ++c) {
        std::vector<int32_t> seq(tokens.begin() + c * ctx, tokens.begin() + (c + 1) * ctx);
        seq[0] = bos;
        qs::KvCache k1, k2;
        const Eigen::MatrixXf a = original.forward(seq, k1);
        const Eigen::MatrixXf b = quantized.forward(seq, k2);
        for (uint32_t j = ctx / 2; j < ctx - 1; ++j) {
            const auto la = logSoftmax(a, j), lb = logSoftmax(b, j);
            const int32_t next = seq[j + 1];
            nll -= la[size_t(next)];
            nllQ -= lb[size_t(next)];
            double kl = 0;
            for (size_t v = 0; v < la.size(); ++v)
                kl += std::exp(la[v]) * (la[v] - lb[v]);
            kld += kl;
            r.kldMax = std::max(r.kldMax, kl);
            const auto ta = std::max_element(la.begin(), la.end()) - la.begin();
            const auto tb = std::max_element(lb.begin(), lb.end()) - lb.begin();
            same += ta == tb;
            ++r.positions;
        }
    }
    r.ppl = std::exp(nll / double(r.positions));
    r.pplQ = std::exp(nllQ / double(r.positions));
    r.kldMean = kld / double(r.positions);
    r.sameTop = double(same) / double(r.positions);
    return r;
}
