#pragma once
// The model the UI-latency test and benchmark analyse: `blocks` × 4 tensors of 1024 × 2048 F32 (8 MiB each,
// 384 MiB for 12 blocks), deterministic values.
#include "widgets/safetensors_writer.h"

#include <QString>

#include <string>
#include <vector>

namespace qstest {

// Returns the number of tensors written, 0 on failure.
inline int writeLatencyModel(const QString& path, int blocks)
{
    constexpr int rows = 1024, cols = 2048;
    std::vector<F32Tensor> tensors;
    uint32_t state = 12345;
    for (int b = 0; b < blocks; ++b)
        for (const char* name : {"self_attn.q_proj", "self_attn.o_proj", "mlp.up_proj", "mlp.down_proj"}) {
            F32Tensor t{"model.layers." + std::to_string(b) + "." + name + ".weight",
                        {uint64_t(rows), uint64_t(cols)}, {}};
            t.values.resize(size_t(rows) * cols);
            for (float& v : t.values) {
                state = state * 1664525u + 1013904223u;
                v = float(int32_t(state >> 8) - (1 << 23)) / float(1 << 23) * 0.05f;
            }
            tensors.push_back(std::move(t));
        }
    return writeSafetensorsF32(path, tensors) ? int(tensors.size()) : 0;
}

} // namespace qstest
