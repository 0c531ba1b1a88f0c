#include "core/quant/nf4.h"

#include "core/util/checked.h"

#include <algorithm>
#include <cmath>

namespace qs {

namespace {

// The code values are bitsandbytes' NF4 table (quantiles of N(0, 1) normalised to [-1, 1], with an exact 0).
constexpr std::array<float, 16> kCodes = {
    -1.0f,
    -0.6961928009986877f,
    -0.5250730514526367f,
    -0.39491748809814453f,
    -0.28444138169288635f,
    -0.18477343022823334f,
    -0.09105003625154495f,
    0.0f,
    0.07958029955625534f,
    0.16093020141124725f,
    0.2461123913526535f,
    0.33791524171829224f,
    0.44070982933044434f,
    0.5626170039176941f,
    0.7229568362236023f,
    1.0f,
};

constexpr std::array<float, 15> midpoints()
{
    std::array<float, 15> m{};
    for (size_t i = 0; i < 15; ++i)
        m[i] = 0.5f * (kCodes[i] + kCodes[i + 1]);
    return m;
}
constexpr std::array<float, 15> kMid = midpoints();

} // namespace

const std::array<float, 16>& nf4Codebook() { return kCodes; }

uint8_t nf4Index(float x)
{
    // Count the midpoints strictly below x: a branch-free search over 15 thresholds.
    uint8_t idx = 0;
    for (float m : kMid)
        idx += x > m ? 1 : 0;
    return idx;
}

void nf4RoundTrip(const float* src, uint64_t n, float* out)
{
    for (uint64_t b = 0; b < n; b += kNf4BlockSize) {
        const uint64_t len = std::min(kNf4BlockSize, n - b);
        float absMax = 0;
        for (uint64_t i = 0; i < len; ++i)
            absMax = std::max(absMax, std::fabs(src[b + i]));
        if (!(absMax > 0)) {
            std::fill(out + b, out + b + len, 0.0f);
            continue;
        }
        // bitsandbytes multiplies by the reciprocal of the block absmax.
        const float inv = 1.0f / absMax;
        for (uint64_t i = 0; i < len; ++i)
            out[b + i] = kCodes[nf4Index(src[b + i] * inv)] * absMax;
    }
}

std::optional<uint64_t> nf4StoredBytes(uint64_t elements)
{
    if (elements == 0)
        return std::nullopt;
    const uint64_t blocks = elements / kNf4BlockSize + (elements % kNf4BlockSize != 0);
    auto scales = checkedMul(blocks, 4);
    return scales ? checkedAdd(elements / 2 + elements % 2, *scales) : std::nullopt;
}

} // namespace qs
