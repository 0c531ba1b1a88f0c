#include "core/quant/fp8.h"

#include "core/model/dtype.h"
#include "core/util/checked.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>

namespace qs {

namespace {

struct Fp8Spec {
    int mantissaBits;
    int bias;
    float maxFinite;
    uint8_t maxCode;
    DType dtype;
};

const Fp8Spec& spec(Fp8Kind kind)
{
    static const Fp8Spec e4m3{3, 7, 448.0f, 0x7E, DType::F8_E4M3};
    static const Fp8Spec e5m2{2, 15, 57344.0f, 0x7B, DType::F8_E5M2};
    return kind == Fp8Kind::E4M3 ? e4m3 : e5m2;
}

const std::array<float, 256>& decodeTable(Fp8Kind kind)
{
    auto build = [](DType type) {
        std::array<float, 256> t{};
        std::array<uint8_t, 256> codes{};
        for (int i = 0; i < 256; ++i)
            codes[i] = static_cast<uint8_t>(i);
        decodeToFloat(type, codes.data(), 256, t.data());
        return t;
    };
    static const std::array<float, 256> e4m3 = build(DType::F8_E4M3);
    static const std::array<float, 256> e5m2 = build(DType::F8_E5M2);
    return kind == Fp8Kind::E4M3 ? e4m3 : e5m2;
}

// Nearest FP8 value of a (0 <= a <= maxFinite) as a float: mantissa rounded to m bits (ties to even) in the
// normal range, a fixed quantum below the smallest normal. Branch-free so that it vectorises.
inline float roundToFp8Grid(float a, int m, float minNormal, float subQuantum, float invSubQuantum)
{
    constexpr float kMagic = 12582912.0f; // 1.5 * 2^23: round half to even
    const float sub = ((a * invSubQuantum + kMagic) - kMagic) * subQuantum;
    const uint32_t bits = std::bit_cast<uint32_t>(a);
    const int shift = 23 - m;
    const uint32_t lsb = (bits >> shift) & 1u;
    const uint32_t rounded = (bits + ((1u << (shift - 1)) - 1u) + lsb) & ~((1u << shift) - 1u);
    // A bit blend rather than a conditional, which GCC -O2 would not vectorise.
    const uint32_t useSub = 0u - static_cast<uint32_t>(a < minNormal);
    return std::bit_cast<float>((std::bit_cast<uint32_t>(sub) & useSub) | (rounded & ~useSub));
}

} // namespace

float fp8MaxFinite(Fp8Kind kind)
{
    return spec(kind).maxFinite;
}

uint8_t floatToFp8(Fp8Kind kind, float value)
{
    const Fp8Spec& s = spec(kind);
    if (std::isnan(value))
        return 0x7F;
    const uint8_t sign = std::signbit(value) ? 0x80 : 0;
    const float a = std::min(std::fabs(value), s.maxFinite);
    const int m = s.mantissaBits;
    const int emin = 1 - s.bias;
    if (a < std::ldexp(1.0f, emin)) {
        // Subnormal: an integer number of quanta; 2^m quanta is the smallest normal, whose code is 2^m too.
        const float k = std::nearbyint(std::ldexp(a, m - emin));
        return static_cast<uint8_t>(sign | static_cast<uint8_t>(k));
    }
    const uint32_t bits = std::bit_cast<uint32_t>(a);
    const int shift = 23 - m;
    const uint32_t r = (bits + ((1u << (shift - 1)) - 1u) + ((bits >> shift) & 1u)) >> shift;
    const int exponent = static_cast<int>(r >> m) - 127 + s.bias;
    uint32_t code = (static_cast<uint32_t>(exponent) << m) | (r & ((1u << m) - 1u));
    code = std::min<uint32_t>(code, s.maxCode);
    return static_cast<uint8_t>(sign | code);
}

float fp8ToFloat(Fp8Kind kind, uint8_t code)
{
    return decodeTable(kind)[code];
}

float fp8ScaleFor(Fp8Kind kind, float absMax)
{
    if (!(absMax > 0) || !std::isfinite(absMax))
        return 1.0f;
    const float s = absMax / spec(kind).maxFinite;
    return s > 0 ? s : 1.0f;
}

namespace {

struct GridParams {
    int m;
    float minNormal, subQuantum, invSubQuantum, maxFinite;
};

inline float fp8Value(float x, float scale, const GridParams& g)
{
    const float v = x / scale;
    const float a = std::min(std::fabs(v), g.maxFinite);
    const float q = roundToFp8Grid(a, g.m, g.minNormal, g.subQuantum, g.invSubQuantum);
    return std::copysign(q, v) * scale;
}

// Tiles of constant length with restrict pointers: what GCC -O2 vectorises.
constexpr uint64_t kTile = 16;

void applyScale(const float* __restrict src, uint64_t n, float* __restrict out, float scale,
                const GridParams& g)
{
    uint64_t i = 0;
    for (; i + kTile <= n; i += kTile)
        for (uint64_t k = 0; k < kTile; ++k)
            out[i + k] = fp8Value(src[i + k], scale, g);
    for (; i < n; ++i)
        out[i] = fp8Value(src[i], scale, g);
}

float absMaxOf(const float* __restrict p, uint64_t n)
{
    float lanes[kTile] = {};
    uint64_t i = 0;
    for (; i + kTile <= n; i += kTile)
        for (uint64_t k = 0; k < kTile; ++k)
            lanes[k] = std::max(lanes[k], std::fabs(p[i + k]));
    float a = 0;
    for (float l : lanes)
        a = std::max(a, l);
    for (; i < n; ++i)
        a = std::max(a, std::fabs(p[i]));
    return a;
}

} // namespace

void fp8RoundTrip(Fp8Kind kind, bool perChannel, const float* src, uint64_t rows, uint64_t cols, float* out,
                  std::optional<float> tensorAbsMax)
{
    const Fp8Spec& sp = spec(kind);
    GridParams g;
    g.m = sp.mantissaBits;
    g.minNormal = std::ldexp(1.0f, 1 - sp.bias);
    g.subQuantum = std::ldexp(1.0f, 1 - sp.bias - g.m);
    g.invSubQuantum = 1.0f / g.subQuantum;
    g.maxFinite = sp.maxFinite;
    if (!perChannel) {
        const float scale = fp8ScaleFor(kind, tensorAbsMax ? *tensorAbsMax : absMaxOf(src, rows * cols));
        applyScale(src, rows * cols, out, scale, g);
        return;
    }
    for (uint64_t r = 0; r < rows; ++r)
        applyScale(src + r * cols, cols, out + r * cols, fp8ScaleFor(kind, absMaxOf(src + r * cols, cols)),
                   g);
}

std::optional<uint64_t> fp8StoredBytes(bool perChannel, uint64_t rows, uint64_t cols)
{
    auto n = checkedMul(rows, cols);
    if (!n || *n == 0)
        return std::nullopt;
    auto scales = checkedMul(perChannel ? rows : 1, 4);
    return scales ? checkedAdd(*n, *scales) : std::nullopt;
}

} // namespace qs
