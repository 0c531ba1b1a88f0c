#pragma once
// What the quantize job wrote for one tensor: its format, its bytes, and how close the values a loader
// decodes from the output are to the original (SQNR in dB).
//
// The SQNR is measured cheaply on a deterministic sample of whole rows: every `sqnrRowStride(rows, cols)`-th
// row, starting at row 0, so that about kSqnrSampleValues values are compared (every row of a tensor up to
// that size). The quantized side is what was written, decoded the way a loader decodes it (ggml blocks
// dequantized; integer codes times the stored scale, F16 for GPTQ, minus the stored zero point; FP8 codes
// times their scale; fake-quant and float conversions rounded to the stored dtype). A tensor copied byte for
// byte has no error: sqnrDb is +infinity and sampledValues 0.

#include "core/quant/metrics.h"

#include <cstdint>
#include <limits>
#include <string>

namespace qs {

constexpr uint64_t kSqnrSampleValues = uint64_t{1} << 18;

struct QuantizedTensor {
    std::string name;
    std::string format;       // the planned format, or the stored dtype when copied unchanged
    uint64_t bytes = 0;       // tensor data written for it (GGUF: without padding; checkpoints: every
                              // safetensors tensor it became: packed weight, scales, zero points, g_idx ...)
    bool copied = false;      // stored bytes copied unchanged
    double sqnrDb = std::numeric_limits<double>::infinity();
    uint64_t sampledValues = 0; // values the SQNR was measured on
};

// Rows of a rows x cols tensor sampled for the SQNR: rows r with r % stride == 0.
inline uint64_t sqnrRowStride(uint64_t rows, uint64_t cols)
{
    const uint64_t perRow = cols == 0 ? 1 : cols;
    const uint64_t wanted = kSqnrSampleValues / perRow > 0 ? kSqnrSampleValues / perRow : 1;
    return rows <= wanted ? 1 : (rows + wanted - 1) / wanted;
}

inline void setQuality(QuantizedTensor& t, const ErrorAccumulator& acc)
{
    const ErrorMetrics m = acc.result();
    t.sampledValues = m.count;
    if (m.count > 0)
        t.sqnrDb = m.sqnrDb;
}

} // namespace qs
