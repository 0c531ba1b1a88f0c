// Vector row quantizers for Q4_0, Q5_0 and MXFP4 (see ggml_vec.h). One body per type, written with GCC
// vector extensions over W lanes and instantiated for SSE2 (W = 4) and AVX2 (W = 8, target attribute);
// every lane does the scalar reference's float operations in the same order.
#include "core/quant/ggml_vec.h"

#include "core/model/dtype.h"
#include "core/quant/ggml_blocks.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstring>

#if defined(__clang__)
#pragma clang fp contract(off)
#endif

namespace qs::ggml::detail {

uint8_t mxfp4Exponent(float amax)
{
    if (!(amax > 0.0f))
        return 0;
    const uint32_t bits = std::bit_cast<uint32_t>(amax);
    const uint32_t e = bits >> 23; // amax > 0: no sign bit
    if (e >= 1 && e <= 254 && (bits & 0x7FFFFF) < 0x7FF000) // log2f lies in [e - 127, e - 126)
        return static_cast<uint8_t>(std::max<int>(static_cast<int>(e) - 2, 0));
    const float biased = std::floor(std::log2(amax)) - 2 + 127;
    return static_cast<uint8_t>(std::clamp(biased, 0.0f, 254.0f));
}

#if defined(__x86_64__) || defined(__i386__)

namespace {

#define QS_ALWAYS_INLINE inline __attribute__((always_inline))

using F4 = float __attribute__((vector_size(16)));
using I4 = int32_t __attribute__((vector_size(16)));
using U8x4 = uint8_t __attribute__((vector_size(4)));
using F8 = float __attribute__((vector_size(32)));
using I8 = int32_t __attribute__((vector_size(32)));
using U8x8 = uint8_t __attribute__((vector_size(8)));

template <int W> struct Lanes;
template <> struct Lanes<4> {
    using F = F4;
    using I = I4;
    using U8 = U8x4;
};
template <> struct Lanes<8> {
    using F = F8;
    using I = I8;
    using U8 = U8x8;
};

template <typename V> QS_ALWAYS_INLINE void load(V& v, const float* p)
{
    std::memcpy(&v, p, sizeof v);
}

// Largest |x| of a 32-value block, ignoring NaN (the scalar `if (amax < fabs(x)) amax = fabs(x)`).
template <int W> QS_ALWAYS_INLINE float blockAbsMax(const float* x)
{
    using F = typename Lanes<W>::F;
    using I = typename Lanes<W>::I;
    F am = F{};
    for (int j = 0; j < kBlock; j += W) {
        F v;
        load(v, x + j);
        const F a = __builtin_bit_cast(F, __builtin_bit_cast(I, v) & 0x7fffffff);
        const I m = a > am;
        am = __builtin_bit_cast(F, (m & __builtin_bit_cast(I, a)) | (~m & __builtin_bit_cast(I, am)));
    }
    float amax = 0;
    for (int l = 0; l < W; ++l)
        amax = amax < am[l] ? am[l] : amax;
    return amax;
}

// min(top, (int)v) for v > 0, else 0 (truncLevel of the scalar code), lane-wise.
template <int W> QS_ALWAYS_INLINE void truncLevels(const float* x, float id, float off, float top,
                                                  typename Lanes<W>::I& out)
{
    using F = typename Lanes<W>::F;
    using I = typename Lanes<W>::I;
    const F zero = F{};
    F v;
    load(v, x);
    v = v * (zero + id) + (zero + off);
    const F t = zero + top;
    const I pos = v > zero; // false for NaN
    v = __builtin_bit_cast(F, pos & __builtin_bit_cast(I, v));
    const I high = v >= t;
    v = __builtin_bit_cast(F, (high & __builtin_bit_cast(I, t)) | (~high & __builtin_bit_cast(I, v)));
    out = __builtin_convertvector(v, I);
}

// Q4_0 (nmax 8, 4 bits) and Q5_0 (nmax 16, 5 bits): d = -(signed absmax) / nmax, level = trunc(x/d + nmax
// + 0.5) clamped to [0, 2 nmax - 1].
template <int W, int Nmax, typename Block> QS_ALWAYS_INLINE void symRow(const float* x, int64_t n,
                                                                       unsigned char* dst)
{
    using I = typename Lanes<W>::I;
    using U8 = typename Lanes<W>::U8;
    for (int64_t i = 0; i < n / kBlock; ++i, x += kBlock, dst += sizeof(Block)) {
        const float amax = blockAbsMax<W>(x);
        float max = 0;
        if (amax > 0)
            for (int j = 0; j < kBlock; ++j)
                if (std::fabs(x[j]) == amax) { // the first value of largest magnitude
                    max = x[j];
                    break;
                }
        const float d = max / -Nmax;
        const float id = d ? 1.0f / d : 0.0f;
        Block b;
        b.d = floatToHalf(d);
        uint32_t qh = 0;
        for (int j = 0; j < kBlock / 2; j += W) {
            I lo, hi;
            truncLevels<W>(x + j, id, Nmax + 0.5f, 2 * Nmax - 1, lo);
            truncLevels<W>(x + j + kBlock / 2, id, Nmax + 0.5f, 2 * Nmax - 1, hi);
            const U8 packed = __builtin_convertvector((lo & 15) | ((hi & 15) << 4), U8);
            std::memcpy(b.qs + j, &packed, W);
            if constexpr (Nmax == 16) {
                for (int l = 0; l < W; ++l) {
                    qh |= static_cast<uint32_t>(lo[l] >> 4) << (j + l);
                    qh |= static_cast<uint32_t>(hi[l] >> 4) << (j + l + kBlock / 2);
                }
            }
        }
        if constexpr (Nmax == 16)
            std::memcpy(b.qh, &qh, 4);
        std::memcpy(dst, &b, sizeof b);
    }
}

// MXFP4 levels of W values: the first of the 16 levels with the smallest |level * d - x| (NaN: level 0).
template <int W> QS_ALWAYS_INLINE void mxfp4Levels(const float* x, const float* level, typename Lanes<W>::I& out)
{
    using F = typename Lanes<W>::F;
    using I = typename Lanes<W>::I;
    F v;
    load(v, x);
    F bestErr = __builtin_bit_cast(F, __builtin_bit_cast(I, (F{} + level[0]) - v) & 0x7fffffff);
    I b = I{};
    for (int k = 1; k < 16; ++k) {
        const F err = __builtin_bit_cast(F, __builtin_bit_cast(I, (F{} + level[k]) - v) & 0x7fffffff);
        const I m = err < bestErr;
        b = (m & k) | (~m & b);
        bestErr = __builtin_bit_cast(F, (m & __builtin_bit_cast(I, err)) | (~m & __builtin_bit_cast(I, bestErr)));
    }
    out = b;
}

// MXFP4: the shared exponent from the block maximum, then the nearest level per value.
template <int W> QS_ALWAYS_INLINE void mxfp4Row(const float* x, int64_t n, unsigned char* dst)
{
    using I = typename Lanes<W>::I;
    using U8 = typename Lanes<W>::U8;
    for (int64_t ib = 0; ib < n / kBlock; ++ib, x += kBlock, dst += sizeof(BlockMXFP4)) {
        const uint8_t e = mxfp4Exponent(blockAbsMax<W>(x));
        const float d = e8m0Half(e);
        float level[16];
        for (int k = 0; k < 16; ++k)
            level[k] = static_cast<float>(kMxfp4Values[k]) * d;
        BlockMXFP4 y;
        y.e = e;
        for (int j = 0; j < kBlock / 2; j += W) {
            I lo, hi;
            mxfp4Levels<W>(x + j, level, lo);
            mxfp4Levels<W>(x + j + kBlock / 2, level, hi);
            const U8 packed = __builtin_convertvector(lo | (hi << 4), U8);
            std::memcpy(y.qs + j, &packed, W);
        }
        std::memcpy(dst, &y, sizeof y);
    }
}

#undef QS_ALWAYS_INLINE

void q4_0Sse2(const float* x, int64_t n, unsigned char* dst) { symRow<4, 8, BlockQ4_0>(x, n, dst); }
void q5_0Sse2(const float* x, int64_t n, unsigned char* dst) { symRow<4, 16, BlockQ5_0>(x, n, dst); }
void mxfp4Sse2(const float* x, int64_t n, unsigned char* dst) { mxfp4Row<4>(x, n, dst); }
// AVX2 without FMA: the compiler must not fuse a multiply and an add that the scalar code rounds twice.
__attribute__((target("avx2"))) void q4_0Avx2(const float* x, int64_t n, unsigned char* dst)
{
    symRow<8, 8, BlockQ4_0>(x, n, dst);
}
__attribute__((target("avx2"))) void q5_0Avx2(const float* x, int64_t n, unsigned char* dst)
{
    symRow<8, 16, BlockQ5_0>(x, n, dst);
}
__attribute__((target("avx2"))) void mxfp4Avx2(const float* x, int64_t n, unsigned char* dst)
{
    mxfp4Row<8>(x, n, dst);
}

QuantSimd detect()
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") ? QuantSimd::Avx2 : QuantSimd::Sse2;
}

} // namespace

#else

namespace {
QuantSimd detect()
{
    return QuantSimd::Scalar;
}
} // namespace

#endif

namespace {

std::atomic<int> g_level{-1};

using Row = void (*)(const float*, int64_t, unsigned char*);

template <Row Sse2, Row Avx2> bool run(const float* x, int64_t n, unsigned char* dst)
{
    switch (quantSimd()) {
    case QuantSimd::Avx2:
        Avx2(x, n, dst);
        return true;
    case QuantSimd::Sse2:
        Sse2(x, n, dst);
        return true;
    case QuantSimd::Scalar:
        break;
    }
    return false;
}

} // namespace

QuantSimd bestQuantSimd()
{
    static const QuantSimd best = detect();
    return best;
}

QuantSimd quantSimd()
{
    int l = g_level.load(std::memory_order_relaxed);
    if (l < 0) {
        l = static_cast<int>(bestQuantSimd());
        g_level.store(l, std::memory_order_relaxed);
    }
    return static_cast<QuantSimd>(l);
}

void setQuantSimd(QuantSimd level)
{
    g_level.store(static_cast<int>(std::min(level, bestQuantSimd())), std::memory_order_relaxed);
}

const char* quantSimdName(QuantSimd level)
{
    switch (level) {
    case QuantSimd::Avx2:
        return "avx2";
    case QuantSimd::Sse2:
        return "sse2";
    case QuantSimd::Scalar:
        break;
    }
    return "scalar";
}

#if defined(__x86_64__) || defined(__i386__)
bool quantizeRowQ4_0Vec(const float* x, int64_t n, unsigned char* dst) { return run<q4_0Sse2, q4_0Avx2>(x, n, dst); }
bool quantizeRowQ5_0Vec(const float* x, int64_t n, unsigned char* dst) { return run<q5_0Sse2, q5_0Avx2>(x, n, dst); }
bool quantizeRowMXFP4Vec(const float* x, int64_t n, unsigned char* dst) { return run<mxfp4Sse2, mxfp4Avx2>(x, n, dst); }
#else
bool quantizeRowQ4_0Vec(const float*, int64_t, unsigned char*) { return false; }
bool quantizeRowQ5_0Vec(const float*, int64_t, unsigned char*) { return false; }
bool quantizeRowMXFP4Vec(const float*, int64_t, unsigned char*) { return false; }
#endif

} // namespace qs::ggml::detail
