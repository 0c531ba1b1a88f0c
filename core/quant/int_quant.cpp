#include "core/quant/int_quant.h"

#include "core/util/checked.h"
#include "core/util/error.h"

#include <algorithm>
#include <cmath>

namespace qs {

namespace {

// Round half to even for |v| < 2^22 without a libm call, so that the loops vectorise; larger values are
// clipped by the caller anyway. Relies on strict IEEE evaluation (no -ffast-math).
inline float roundEven(float v)
{
    constexpr float kMagic = 12582912.0f; // 1.5 * 2^23
    return (v + kMagic) - kMagic;
}

// The hot loops run over tiles of constant length with restrict pointers: that is what GCC's -O2 (the
// project's RelWithDebInfo) vectorises; the scalar tail handles the rest.
constexpr uint64_t kTile = 16;

void minMax(const float* __restrict p, uint64_t n, float& lo, float& hi)
{
    float a[kTile], b[kTile];
    for (uint64_t k = 0; k < kTile; ++k) {
        a[k] = lo;
        b[k] = hi;
    }
    uint64_t i = 0;
    for (; i + kTile <= n; i += kTile)
        for (uint64_t k = 0; k < kTile; ++k) {
            a[k] = std::min(a[k], p[i + k]);
            b[k] = std::max(b[k], p[i + k]);
        }
    float x = lo, y = hi;
    for (uint64_t k = 0; k < kTile; ++k) {
        x = std::min(x, a[k]);
        y = std::max(y, b[k]);
    }
    for (; i < n; ++i) {
        x = std::min(x, p[i]);
        y = std::max(y, p[i]);
    }
    lo = x;
    hi = y;
}

inline float gridValue(float x, float scale, float zero, float maxq)
{
    float q = roundEven(x / scale) + zero;
    q = std::min(std::max(q, 0.0f), maxq);
    return scale * (q - zero);
}

void applyGrid(const IntGrid& g, const float* __restrict src, uint64_t n, float* __restrict out)
{
    const float scale = g.scale, zero = g.zero, maxq = static_cast<float>(g.maxq);
    uint64_t i = 0;
    for (; i + kTile <= n; i += kTile)
        for (uint64_t k = 0; k < kTile; ++k)
            out[i + k] = gridValue(src[i + k], scale, zero, maxq);
    for (; i < n; ++i)
        out[i] = gridValue(src[i], scale, zero, maxq);
}

std::optional<uint64_t> ceilDiv(uint64_t a, uint64_t b)
{
    return b ? std::optional(a / b + (a % b != 0)) : std::nullopt;
}

} // namespace

float IntGrid::quantize(float x) const
{
    return gridValue(x, scale, zero, static_cast<float>(maxq));
}

IntGrid intGridFor(float minValue, float maxValue, int bits, bool symmetric)
{
    IntGrid g;
    g.maxq = (1 << bits) - 1;
    float xmin = std::min(minValue, 0.0f);
    float xmax = std::max(maxValue, 0.0f);
    if (symmetric) {
        xmax = std::max(std::fabs(xmin), xmax);
        // As in GPTQ: a group without negative values keeps xmin = 0 (half the range is then unused).
        if (xmin < 0)
            xmin = -xmax;
    }
    if (xmin == 0 && xmax == 0) {
        xmin = -1;
        xmax = 1;
    }
    g.scale = (xmax - xmin) / static_cast<float>(g.maxq);
    g.zero = symmetric ? static_cast<float>((g.maxq + 1) / 2) : roundEven(-xmin / g.scale);
    return g;
}

std::optional<uint64_t> intStoredBytes(const IntQuantConfig& c, uint64_t rows, uint64_t cols)
{
    if (c.bits < 2 || c.bits > 8 || c.groupSize < -1 || rows == 0 || cols == 0)
        return std::nullopt;
    const uint64_t b = static_cast<uint64_t>(c.bits);
    auto kBits = checkedMul(cols, b), nBits = checkedMul(rows, b);
    if (!kBits || !nBits)
        return std::nullopt;
    auto qweight = checkedMul(*ceilDiv(*kBits, 32), rows);
    if (!qweight || !(qweight = checkedMul(*qweight, 4)))
        return std::nullopt;
    if (c.groupSize == 0) // per tensor: one fp16 scale and one int32 zero word
        return checkedAdd(*qweight, 6);
    const uint64_t groups = c.groupSize > 0 ? *ceilDiv(cols, static_cast<uint64_t>(c.groupSize)) : 1;
    auto qzeros = checkedMul(groups, *ceilDiv(*nBits, 32));
    auto scales = checkedMul(groups, rows);
    auto gidx = checkedMul(cols, 4);
    if (!qzeros || !(qzeros = checkedMul(*qzeros, 4)) || !scales || !(scales = checkedMul(*scales, 2)) ||
        !gidx)
        return std::nullopt;
    auto total = checkedAdd(*qweight, *qzeros);
    if (total)
        total = checkedAdd(*total, *scales);
    if (total)
        total = checkedAdd(*total, *gidx);
    return total;
}

void intRoundTrip(const IntQuantConfig& c, const float* src, uint64_t rows, uint64_t cols, float* out,
                  std::optional<float> tensorMin, std::optional<float> tensorMax)
{
    if (c.bits < 2 || c.bits > 8 || c.groupSize < -1)
        throw Error(ErrorCode::Internal, "invalid integer quantization config");
    if (rows == 0 || cols == 0)
        return;
    if (c.groupSize == 0) {
        float lo = tensorMin.value_or(0.0f), hi = tensorMax.value_or(0.0f);
        if (!tensorMin || !tensorMax)
            minMax(src, rows * cols, lo, hi);
        applyGrid(intGridFor(lo, hi, c.bits, c.symmetric), src, rows * cols, out);
        return;
    }
    const uint64_t group = c.groupSize > 0 ? static_cast<uint64_t>(c.groupSize) : cols;
    for (uint64_t r = 0; r < rows; ++r) {
        const float* s = src + r * cols;
        float* o = out + r * cols;
        for (uint64_t g = 0; g < cols; g += group) {
            const uint64_t n = std::min(group, cols - g);
            // GPTQ's xmin/xmax include 0, so starting from 0 is the same thing.
            float lo = 0.0f, hi = 0.0f;
            minMax(s + g, n, lo, hi);
            applyGrid(intGridFor(lo, hi, c.bits, c.symmetric), s + g, n, o + g);
        }
    }
}

} // namespace qs
