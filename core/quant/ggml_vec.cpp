// Vector row quantizers for Q4_0, Q5_0 and MXFP4 (see ggml_vec.h). One body per type, written with GCC
// vector extensions over W lanes and instantiated for SSE2 (W = 4) and AVX2 (W = 8, target attribute);
// every lane does the scalar reference's float operations in the same order.
#include "core/quant/ggml_vec.h"

#include "core/model/dtype.h"
#include "core/quant/ggml_blocks.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cfloat>
#include <cmath>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <emmintrin.h>
#endif

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
using F8 = float __attribute__((vector_size(32)));
using I8 = int32_t __attribute__((vector_size(32)));

template <int W> struct Lanes;
template <> struct Lanes<4> {
    using F = F4;
    using I = I4;
};
template <> struct Lanes<8> {
    using F = F8;
    using I = I8;
};

template <typename V> QS_ALWAYS_INLINE void load(V& v, const float* p)
{
    std::memcpy(&v, p, sizeof v);
}

// The 4-lane quarters of W-lane vectors as SSE2 registers (SSE2 is the x86-64 baseline; a 256-bit vector
// is split with a shuffle, which needs no AVX intrinsic in this target-neutral code).
template <int W> QS_ALWAYS_INLINE void quarters(const typename Lanes<W>::I& v, __m128i* out)
{
    if constexpr (W == 4) {
        out[0] = reinterpret_cast<const __m128i&>(v);
    } else {
        const I4 a = __builtin_shufflevector(v, v, 0, 1, 2, 3), b = __builtin_shufflevector(v, v, 4, 5, 6, 7);
        out[0] = reinterpret_cast<const __m128i&>(a);
        out[1] = reinterpret_cast<const __m128i&>(b);
    }
}

// Bit l set where lane l of the comparison mask is true.
template <int W> QS_ALWAYS_INLINE unsigned maskBits(const typename Lanes<W>::I& m)
{
    __m128i q[2];
    quarters<W>(m, q);
    unsigned bits = unsigned(_mm_movemask_ps(_mm_castsi128_ps(q[0])));
    if constexpr (W == 8)
        bits |= unsigned(_mm_movemask_ps(_mm_castsi128_ps(q[1]))) << 4;
    return bits;
}

// 16 ints in [0, 255] (16 / W vectors) to 16 bytes.
template <int W> QS_ALWAYS_INLINE void packBytes(const typename Lanes<W>::I* v, uint8_t* out)
{
    __m128i q[4];
    for (int k = 0; k < 16 / W; ++k)
        quarters<W>(v[k], q + k * (W / 4));
    const __m128i bytes = _mm_packus_epi16(_mm_packs_epi32(q[0], q[1]), _mm_packs_epi32(q[2], q[3]));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out), bytes);
}

// Largest |x| of a 32-value block, ignoring NaN (the scalar `if (amax < fabs(x)) amax = fabs(x)`), and the
// lanes' |x| vectors for the caller.
template <int W> QS_ALWAYS_INLINE float blockAbsMax(const float* x, typename Lanes<W>::F* absx)
{
    using F = typename Lanes<W>::F;
    using I = typename Lanes<W>::I;
    F am = F{};
    for (int k = 0; k < kBlock / W; ++k) {
        F v;
        load(v, x + k * W);
        const F a = __builtin_bit_cast(F, __builtin_bit_cast(I, v) & 0x7fffffff);
        absx[k] = a;
        const I m = a > am;
        am = __builtin_bit_cast(F, (m & __builtin_bit_cast(I, a)) | (~m & __builtin_bit_cast(I, am)));
    }
    // Lanes are >= 0 and never NaN here: a tree of maxima gives the sequential maximum.
    F4 r;
    if constexpr (W == 8) {
        const F4 a = __builtin_shufflevector(am, am, 0, 1, 2, 3), b = __builtin_shufflevector(am, am, 4, 5, 6, 7);
        r = a > b ? a : b;
    } else {
        r = am;
    }
    const F4 s = __builtin_shufflevector(r, r, 2, 3, 0, 1);
    r = r > s ? r : s;
    const F4 t = __builtin_shufflevector(r, r, 1, 0, 3, 2);
    r = r > t ? r : t;
    return r[0];
}

// min(top, (int)v) for v > 0, else 0 (truncLevel of the scalar code), lane-wise.
// (x - sub) * id + off, as the scalar code rounds it (sub = 0 leaves x unchanged, so the symmetric types
// use it too).
template <int W> QS_ALWAYS_INLINE void truncLevels(const float* x, float sub, float id, float off, float top,
                                                  typename Lanes<W>::I& out)
{
    using F = typename Lanes<W>::F;
    using I = typename Lanes<W>::I;
    const F zero = F{};
    F v;
    load(v, x);
    v = (v - (zero + sub)) * (zero + id) + (zero + off);
    const F t = zero + top;
    const I pos = v > zero; // false for NaN
    v = __builtin_bit_cast(F, pos & __builtin_bit_cast(I, v));
    const I high = v >= t;
    v = __builtin_bit_cast(F, (high & __builtin_bit_cast(I, t)) | (~high & __builtin_bit_cast(I, v)));
    out = __builtin_convertvector(v, I);
}

// The levels of a block, trunc((x - sub) * id + off) clamped to [0, top], as nibbles in b.qs (value j
// low, value j + 16 high) and, for the 5-bit types, their fifth bits in b.qh.
template <int W, bool FiveBits, typename Block>
QS_ALWAYS_INLINE void packLevels(const float* x, float sub, float id, float off, float top, Block& b)
{
    using I = typename Lanes<W>::I;
    constexpr int kHalf = kBlock / 2 / W; // vectors per half block
    I packed[kHalf];
    uint32_t qh = 0;
    for (int k = 0; k < kHalf; ++k) {
        I lo, hi;
        truncLevels<W>(x + k * W, sub, id, off, top, lo);
        truncLevels<W>(x + k * W + kBlock / 2, sub, id, off, top, hi);
        packed[k] = (lo & 15) | ((hi & 15) << 4);
        if constexpr (FiveBits) {
            qh |= maskBits<W>(lo > 15) << (k * W);
            qh |= maskBits<W>(hi > 15) << (k * W + kBlock / 2);
        }
    }
    packBytes<W>(packed, b.qs);
    if constexpr (FiveBits)
        std::memcpy(b.qh, &qh, 4);
}

// Q4_0 (nmax 8, 4 bits) and Q5_0 (nmax 16, 5 bits): d = -(signed absmax) / nmax, level = trunc(x/d + nmax
// + 0.5) clamped to [0, 2 nmax - 1].
template <int W, int Nmax, typename Block> QS_ALWAYS_INLINE void symRow(const float* x, int64_t n,
                                                                       unsigned char* dst)
{
    using F = typename Lanes<W>::F;
    for (int64_t i = 0; i < n / kBlock; ++i, x += kBlock, dst += sizeof(Block)) {
        F absx[kBlock / W];
        const float amax = blockAbsMax<W>(x, absx);
        // The first value of largest magnitude, without a data-dependent branch: one bit per value.
        uint32_t bits = 0;
        for (int k = 0; k < kBlock / W; ++k)
            bits |= maskBits<W>(absx[k] == (F{} + amax)) << (k * W);
        const float max = amax > 0 ? x[__builtin_ctz(bits | 0x80000000u)] : 0.0f;
        const float d = max / -Nmax;
        const float id = d ? 1.0f / d : 0.0f;
        Block b;
        b.d = toHalfFast(d);
        packLevels<W, Nmax == 16>(x, 0.0f, id, Nmax + 0.5f, 2 * Nmax - 1, b);
        std::memcpy(dst, &b, sizeof b);
    }
}

// Q4_1 (15 steps) and Q5_1 (31 steps): min and max of the block, d = (max - min) / steps, level =
// trunc((x - min) / d + 0.5) clamped to [0, steps]; the block stores d and min.
template <int W, int Steps, typename Block> QS_ALWAYS_INLINE void asymRow(const float* x, int64_t n,
                                                                         unsigned char* dst)
{
    using F = typename Lanes<W>::F;
    for (int64_t i = 0; i < n / kBlock; ++i, x += kBlock, dst += sizeof(Block)) {
        // The scalar `if (x < min) min = x; if (x > max) max = x` from +-FLT_MAX, lane-wise (NaN skipped).
        F mn = F{} + FLT_MAX, mx = F{} - FLT_MAX;
        for (int k = 0; k < kBlock / W; ++k) {
            F v;
            load(v, x + k * W);
            mn = v < mn ? v : mn;
            mx = v > mx ? v : mx;
        }
        F4 a, b;
        if constexpr (W == 8) {
            const F4 l0 = __builtin_shufflevector(mn, mn, 0, 1, 2, 3), l1 = __builtin_shufflevector(mn, mn, 4, 5, 6, 7);
            const F4 h0 = __builtin_shufflevector(mx, mx, 0, 1, 2, 3), h1 = __builtin_shufflevector(mx, mx, 4, 5, 6, 7);
            a = l1 < l0 ? l1 : l0;
            b = h1 > h0 ? h1 : h0;
        } else {
            a = mn;
            b = mx;
        }
        for (int step : {2, 1}) {
            const F4 sa = step == 2 ? __builtin_shufflevector(a, a, 2, 3, 0, 1) : __builtin_shufflevector(a, a, 1, 0, 3, 2);
            const F4 sb = step == 2 ? __builtin_shufflevector(b, b, 2, 3, 0, 1) : __builtin_shufflevector(b, b, 1, 0, 3, 2);
            a = sa < a ? sa : a;
            b = sb > b ? sb : b;
        }
        float min = a[0];
        const float max = b[0];
        if (min == 0) { // the tree may have kept the other zero: the scalar keeps the block's first zero
            for (int k = 0; k < kBlock / W; ++k) {
                F v;
                load(v, x + k * W);
                const unsigned bits = maskBits<W>(v == F{});
                if (bits) {
                    min = x[k * W + __builtin_ctz(bits)];
                    break;
                }
            }
        }
        const float d = (max - min) / Steps;
        const float id = d ? 1.0f / d : 0.0f;
        Block blk;
        blk.d = toHalfFast(d);
        blk.m = toHalfFast(min);
        packLevels<W, Steps == 31>(x, min, id, 0.5f, Steps, blk);
        std::memcpy(dst, &blk, sizeof blk);
    }
}

// MXFP4 levels of W values: the first of the 16 levels with the smallest |level * d - x| (NaN: level 0).
// Only levels of x's sign can win: for x >= 0 a negative level's error |-a d - x| rounds to at least
// |x|, the error of level 0, which wins ties; for x < 0 mirrored (IEEE rounding is symmetric in sign), with
// levels 9..15 = -levels 1..7. So the search runs over levels 1..7 on |x| and adds 8 for a negative x.
template <int W> QS_ALWAYS_INLINE void mxfp4Levels(const float* x, const float* level, typename Lanes<W>::I& out)
{
    using F = typename Lanes<W>::F;
    using I = typename Lanes<W>::I;
    F v;
    load(v, x);
    const F a = __builtin_bit_cast(F, __builtin_bit_cast(I, v) & 0x7fffffff);
    F bestErr = a; // |0 * d - x|
    I b = I{};
    for (int k = 1; k < 8; ++k) {
        const F err = __builtin_bit_cast(F, __builtin_bit_cast(I, (F{} + level[k]) - a) & 0x7fffffff);
        const I m = err < bestErr;
        b = (m & k) | (~m & b);
        bestErr = __builtin_bit_cast(F, (m & __builtin_bit_cast(I, err)) | (~m & __builtin_bit_cast(I, bestErr)));
    }
    out = b + ((v < F{}) & (b > 0) & 8);
}

// MXFP4: the shared exponent from the block maximum, then the nearest level per value.
template <int W> QS_ALWAYS_INLINE void mxfp4Row(const float* x, int64_t n, unsigned char* dst)
{
    using I = typename Lanes<W>::I;
    for (int64_t ib = 0; ib < n / kBlock; ++ib, x += kBlock, dst += sizeof(BlockMXFP4)) {
        typename Lanes<W>::F absx[kBlock / W];
        const uint8_t e = mxfp4Exponent(blockAbsMax<W>(x, absx));
        const float d = e8m0Half(e);
        float level[16];
        for (int k = 0; k < 16; ++k)
            level[k] = static_cast<float>(kMxfp4Values[k]) * d;
        BlockMXFP4 y;
        y.e = e;
        I packed[kBlock / 2 / W];
        for (int k = 0; k < kBlock / 2 / W; ++k) {
            I lo, hi;
            mxfp4Levels<W>(x + k * W, level, lo);
            mxfp4Levels<W>(x + k * W + kBlock / 2, level, hi);
            packed[k] = lo | (hi << 4);
        }
        packBytes<W>(packed, y.qs);
        std::memcpy(dst, &y, sizeof y);
    }
}

// ggml's make_q3_quants (nmax 4) for W of the 16 groups of 16 values of a Q3_K super-block at once, one
// group per lane: xt[i * 16 + g] is value i of group g. The lanes make exactly the scalar decisions; a
// group whose search has converged makes no more changes, so running it on while other lanes still
// change is the same as the scalar early exit.
template <int W> QS_ALWAYS_INLINE void q3Lanes(const float* xt, int g0, int8_t* L, float* scales)
{
    using F = typename Lanes<W>::F;
    using I = typename Lanes<W>::I;
    constexpr int kN = 16, kNmax = 4;
    F x[kN];
    for (int i = 0; i < kN; ++i)
        load(x[i], xt + i * 16 + g0);
    F amax = F{}, max = F{};
    for (int i = 0; i < kN; ++i) {
        const F ax = __builtin_bit_cast(F, __builtin_bit_cast(I, x[i]) & 0x7fffffff);
        const I m = ax > amax;
        amax = m ? ax : amax;
        max = m ? x[i] : max;
    }
    const I live = amax >= (F{} + 1e-15f); // else the group is all zeros: L = 0, scale 0
    const F iscale = (F{} - float(kNmax)) / max;
    auto nearest = [](const F& v, I& out) {
        out = (__builtin_bit_cast(I, v + 12582912.0f) & 0x007fffff) - 0x00400000;
        out = out > kNmax - 1 ? I{} + (kNmax - 1) : out;
        out = out < -kNmax ? I{} - kNmax : out;
    };
    I l[kN];
    F sumlx = F{}, suml2 = F{};
    for (int i = 0; i < kN; ++i) {
        nearest(iscale * x[i], l[i]);
        const F fl = __builtin_convertvector(l[i], F);
        const F w = x[i] * x[i];
        sumlx += w * x[i] * fl;
        suml2 += w * fl * fl;
    }
    for (int round = 0; round < 5; ++round) {
        I changed = I{};
        for (int i = 0; i < kN; ++i) {
            const F w = x[i] * x[i];
            const F fl = __builtin_convertvector(l[i], F);
            F slx = sumlx - w * x[i] * fl;
            const I pos = slx > F{};
            F sl2 = suml2 - w * fl * fl;
            I newL;
            nearest(x[i] * sl2 / slx, newL);
            const F fn = __builtin_convertvector(newL, F);
            const I differs = pos & (newL != l[i]);
            slx += w * x[i] * fn;
            sl2 += w * fn * fn;
            const I take = differs & (sl2 > F{}) & (slx * slx * suml2 > sumlx * sumlx * sl2) & live;
            l[i] = take ? newL : l[i];
            sumlx = take ? slx : sumlx;
            suml2 = take ? sl2 : suml2;
            changed |= take;
        }
        if (!maskBits<W>(changed))
            break;
    }
    const F scale = suml2 > F{} ? sumlx / suml2 : F{};
    for (int k = 0; k < W; ++k)
        scales[g0 + k] = live[k] ? scale[k] : 0.0f;
    for (int i = 0; i < kN; ++i)
        for (int k = 0; k < W; ++k)
            L[(g0 + k) * kN + i] = static_cast<int8_t>(live[k] ? l[i][k] + kNmax : 0);
}

#undef QS_ALWAYS_INLINE

void q4_0Sse2(const float* x, int64_t n, unsigned char* dst) { symRow<4, 8, BlockQ4_0>(x, n, dst); }
void q5_0Sse2(const float* x, int64_t n, unsigned char* dst) { symRow<4, 16, BlockQ5_0>(x, n, dst); }
void q4_1Sse2(const float* x, int64_t n, unsigned char* dst) { asymRow<4, 15, BlockQ4_1>(x, n, dst); }
void q5_1Sse2(const float* x, int64_t n, unsigned char* dst) { asymRow<4, 31, BlockQ5_1>(x, n, dst); }
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
__attribute__((target("avx2"))) void q4_1Avx2(const float* x, int64_t n, unsigned char* dst)
{
    asymRow<8, 15, BlockQ4_1>(x, n, dst);
}
__attribute__((target("avx2"))) void q5_1Avx2(const float* x, int64_t n, unsigned char* dst)
{
    asymRow<8, 31, BlockQ5_1>(x, n, dst);
}
void q3Sse2(const float* xt, int8_t* L, float* scales)
{
    for (int g = 0; g < 16; g += 4)
        q3Lanes<4>(xt, g, L, scales);
}
__attribute__((target("avx2"))) void q3Avx2(const float* xt, int8_t* L, float* scales)
{
    for (int g = 0; g < 16; g += 8)
        q3Lanes<8>(xt, g, L, scales);
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

bool makeQ3QuantsVec(const float* x, int8_t* L, float* scales)
{
#if defined(__x86_64__) || defined(__i386__)
    const QuantSimd level = quantSimd();
    if (level == QuantSimd::Scalar)
        return false;
    alignas(32) float xt[256];
    for (int g = 0; g < 16; ++g)
        for (int i = 0; i < 16; ++i)
            xt[i * 16 + g] = x[g * 16 + i];
    (level == QuantSimd::Avx2 ? q3Avx2 : q3Sse2)(xt, L, scales);
    return true;
#else
    (void)x, (void)L, (void)scales;
    return false;
#endif
}

#if defined(__x86_64__) || defined(__i386__)
bool quantizeRowQ4_0Vec(const float* x, int64_t n, unsigned char* dst) { return run<q4_0Sse2, q4_0Avx2>(x, n, dst); }
bool quantizeRowQ5_0Vec(const float* x, int64_t n, unsigned char* dst) { return run<q5_0Sse2, q5_0Avx2>(x, n, dst); }
bool quantizeRowMXFP4Vec(const float* x, int64_t n, unsigned char* dst) { return run<mxfp4Sse2, mxfp4Avx2>(x, n, dst); }
bool quantizeRowQ4_1Vec(const float* x, int64_t n, unsigned char* dst) { return run<q4_1Sse2, q4_1Avx2>(x, n, dst); }
bool quantizeRowQ5_1Vec(const float* x, int64_t n, unsigned char* dst) { return run<q5_1Sse2, q5_1Avx2>(x, n, dst); }
#else
bool quantizeRowQ4_0Vec(const float*, int64_t, unsigned char*) { return false; }
bool quantizeRowQ5_0Vec(const float*, int64_t, unsigned char*) { return false; }
bool quantizeRowMXFP4Vec(const float*, int64_t, unsigned char*) { return false; }
bool quantizeRowQ4_1Vec(const float*, int64_t, unsigned char*) { return false; }
bool quantizeRowQ5_1Vec(const float*, int64_t, unsigned char*) { return false; }
#endif

} // namespace qs::ggml::detail
