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

const std::array<float, 16>& nf4Codebook()
{
    return kCodes;
}

uint8_t nf4Index(float x)
{
    // Count the midpoints strictly below x: a branch-free search over 15 thresholds.
    uint8_t idx = 0;
    for (float m : kMid)
        idx += x > m ? 1 : 0;
    return idx;
}

namespace {

// One block; N is the block length, a constant for full blocks so that the loops vectorise at -O2.
template <uint64_t N> void nf4Block(const float* __restrict src, uint64_t len, float* __restrict out)
{
    const uint64_t n = N ? N : len;
    float absMax = 0;
    for (uint64_t i = 0; i < n; ++i)
        absMax = std::max(absMax, std::fabs(src[i]));
    if (!(absMax > 0)) {
        std::fill(out, out + n, 0.0f);
        return;
    }
    // bitsandbytes multiplies by the reciprocal of the block absmax. The index is the number of midpoints
    // below the value, counted threshold by threshold.
    const float inv = 1.0f / absMax;
    float normalized[kNf4BlockSize];
    int32_t index[kNf4BlockSize];
    for (uint64_t i = 0; i < n; ++i) {
        normalized[i] = src[i] * inv;
        index[i] = 0;
    }
    for (float m : kMid)
        for (uint64_t i = 0; i < n; ++i)
            index[i] += normalized[i] > m ? 1 : 0;
    for (uint64_t i = 0; i < n; ++i)
        out[i] = kCodes[static_cast<size_t>(index[i])] * absMax;
}

} // namespace

void nf4RoundTrip(const float* src, uint64_t n, float* out)
{
    uint64_t b = 0;
    for (; b + kNf4BlockSize <= n; b += kNf4BlockSize)
        nf4Block<kNf4BlockSize>(src + b, kNf4BlockSize, out + b);
    if (b < n)
        nf4Block<0>(src + b, n - b, out + b);
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
