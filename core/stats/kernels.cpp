#include "core/stats/kernels.h"

#include "core/model/dtype.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>

// The loops use GCC vector extensions (explicit SIMD without intrinsics), instantiated twice: 8 lanes
// compiled for x86-64-v3 (AVX2) and 4 lanes for the x86-64 baseline (SSE2), chosen once at run time.
// Lane counts match the native register width so that no vector operation is split or scalarised.
#if defined(__x86_64__) && defined(__GNUC__)
#define QS_DISPATCH 1
#include <cpuid.h>
#define QS_TARGET_V3 __attribute__((target("arch=x86-64-v3")))
#else
#define QS_DISPATCH 0
#define QS_TARGET_V3
#endif

#pragma GCC diagnostic ignored "-Wpsabi"

namespace qs::detail {

namespace {

// Software prefetch distance (see kernels_x86.cpp): one 4 KiB page ahead.
constexpr size_t kPrefetch = 4096;

// 8-lane (256-bit) and 4-lane (128-bit) vector types.
using F8 = float __attribute__((vector_size(32)));
using I8 = int32_t __attribute__((vector_size(32)));
using H8 = float __attribute__((vector_size(16)));  // half of F8
using D8 = double __attribute__((vector_size(32))); // H8 widened
using U16x8 = uint16_t __attribute__((vector_size(16)));
using U32x8 = uint32_t __attribute__((vector_size(32)));
using F4 = float __attribute__((vector_size(16)));
using I4 = int32_t __attribute__((vector_size(16)));
using H4 = float __attribute__((vector_size(8)));
using D4 = double __attribute__((vector_size(16)));
using U16x4 = uint16_t __attribute__((vector_size(8)));
using U32x4 = uint32_t __attribute__((vector_size(16)));

template <typename VF, typename VI, typename VH, typename VD> struct Lanes {
    using F = VF;
    using I = VI;
    using H = VH;
    using D = VD;
    static constexpr int kLanes = sizeof(VF) / sizeof(float);
};
using Wide = Lanes<F8, I8, H8, D8>;
using Narrow = Lanes<F4, I4, H4, D4>;

std::atomic<int> g_level{-1};

KernelLevel detectLevel()
{
#if QS_DISPATCH
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("fma"))
        return KernelLevel::Avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return KernelLevel::Avx2;
#endif
    return KernelLevel::Baseline;
}

KernelLevel level()
{
    int l = g_level.load(std::memory_order_relaxed);
    if (l < 0) {
        l = static_cast<int>(bestKernelLevel());
        g_level.store(l, std::memory_order_relaxed);
    }
    return static_cast<KernelLevel>(l);
}

template <typename V> [[gnu::always_inline]] inline V load(const void* p)
{
    V v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

template <typename T, bool Fourth>
[[gnu::always_inline]] inline void accumulate(const float* x, size_t n, float shift, BlockSums& out)
{
    using VF = typename T::F;
    using VI = typename T::I;
    using VH = typename T::H;
    using VD = typename T::D;
    constexpr int kLanes = T::kLanes;
    constexpr float kInf = std::numeric_limits<float>::infinity();
    const VF inf = VF{} + kInf;
    const VF vshift = VF{} + shift;
    const VD sh = VD{} + static_cast<double>(shift);
    VF mn = VF{} + kInf, mx = VF{} - kInf;
    VI zeros{}, nans{}, infs{};
    VD s1{}, s2{}, s3{}, s4{};
    size_t i = 0;
    // Integer lane counters hold at most n / kLanes increments; blocks are far below 2^31 elements.
    for (; i + kLanes <= n; i += kLanes) {
        __builtin_prefetch(reinterpret_cast<const char*>(x + i) + kPrefetch);
        const VF v = load<VF>(x + i);
        const VF a = v < 0 ? -v : v;
        const VI fin = a < inf; // false for NaN and +-inf
        mn = (fin & (v < mn)) ? v : mn;
        mx = (fin & (v > mx)) ? v : mx;
        zeros -= (v == 0);
        nans -= (v != v);
        infs -= (a == inf);
        // Non-finite values stand in as the shift, so they add exactly zero to every power sum.
        const VF vf = fin ? v : vshift;
        VH lo, hi;
        std::memcpy(&lo, &vf, sizeof lo);
        std::memcpy(&hi, reinterpret_cast<const char*>(&vf) + sizeof lo, sizeof hi);
        const VD z0 = __builtin_convertvector(lo, VD) - sh;
        const VD z1 = __builtin_convertvector(hi, VD) - sh;
        const VD q0 = z0 * z0, q1 = z1 * z1;
        s1 += z0 + z1;
        s2 += q0 + q1;
        if constexpr (Fourth) {
            s3 += q0 * z0 + q1 * z1;
            s4 += q0 * q0 + q1 * q1;
        }
    }
    float fmn = kInf, fmx = -kInf;
    uint64_t nz = 0, nn = 0, ni = 0;
    double t1 = 0, t2 = 0, t3 = 0, t4 = 0;
    for (int l = 0; l < kLanes; ++l) {
        fmn = mn[l] < fmn ? mn[l] : fmn;
        fmx = mx[l] > fmx ? mx[l] : fmx;
        nz += static_cast<uint32_t>(zeros[l]);
        nn += static_cast<uint32_t>(nans[l]);
        ni += static_cast<uint32_t>(infs[l]);
    }
    for (int l = 0; l < kLanes / 2; ++l) {
        t1 += s1[l];
        t2 += s2[l];
        t3 += s3[l];
        t4 += s4[l];
    }
    for (; i < n; ++i) {
        const float v = x[i];
        if (v != v) {
            ++nn;
            continue;
        }
        if (std::fabs(v) == kInf) {
            ++ni;
            continue;
        }
        fmn = v < fmn ? v : fmn;
        fmx = v > fmx ? v : fmx;
        nz += v == 0;
        const double d = static_cast<double>(v) - static_cast<double>(shift), q = d * d;
        t1 += d;
        t2 += q;
        if constexpr (Fourth) {
            t3 += q * d;
            t4 += q * q;
        }
    }
    out.min = fmn;
    out.max = fmx;
    out.zeros = nz;
    out.nan = nn;
    out.inf = ni;
    out.finite = n - nn - ni;
    out.s1 = t1;
    out.s2 = t2;
    out.s3 = t3;
    out.s4 = t4;
}

template <typename T>
[[gnu::always_inline]] inline uint64_t outside(const float* x, size_t n, float lo, float hi)
{
    using VF = typename T::F;
    using VI = typename T::I;
    constexpr int kLanes = T::kLanes;
    const VF vlo = VF{} + lo, vhi = VF{} + hi;
    const VF inf = VF{} + std::numeric_limits<float>::infinity();
    VI c{};
    size_t i = 0;
    for (; i + kLanes <= n; i += kLanes) {
        __builtin_prefetch(reinterpret_cast<const char*>(x + i) + kPrefetch);
        const VF v = load<VF>(x + i);
        const VF a = v < 0 ? -v : v;
        c -= ((v < vlo) | (v > vhi)) & (a < inf);
    }
    uint64_t total = 0;
    for (int l = 0; l < kLanes; ++l)
        total += static_cast<uint32_t>(c[l]);
    for (; i < n; ++i)
        total += ((x[i] < lo) | (x[i] > hi)) & std::isfinite(x[i]);
    return total;
}

template <typename VU16, typename VU32>
[[gnu::always_inline]] inline void widenBf16(const uint16_t* x, size_t n, float* out)
{
    constexpr size_t kLanes = sizeof(VU32) / 4;
    size_t i = 0;
    for (; i + kLanes <= n; i += kLanes) {
        const VU32 w = __builtin_convertvector(load<VU16>(x + i), VU32) << 16;
        std::memcpy(out + i, &w, sizeof w);
    }
    for (; i < n; ++i) {
        const uint32_t w = static_cast<uint32_t>(x[i]) << 16;
        std::memcpy(out + i, &w, sizeof w);
    }
}

QS_TARGET_V3 uint64_t outsideWide(const float* x, size_t n, float lo, float hi)
{
    return outside<Wide>(x, n, lo, hi);
}

uint64_t outsideNarrow(const float* x, size_t n, float lo, float hi)
{
    return outside<Narrow>(x, n, lo, hi);
}

QS_TARGET_V3 void widenWide(const uint16_t* x, size_t n, float* out)
{
    widenBf16<U16x8, U32x8>(x, n, out);
}

void widenNarrow(const uint16_t* x, size_t n, float* out)
{
    widenBf16<U16x4, U32x4>(x, n, out);
}

} // namespace

KernelLevel bestKernelLevel()
{
    static const KernelLevel best = detectLevel();
    return best;
}

KernelLevel kernelLevel()
{
    return level();
}

void setKernelLevel(KernelLevel l)
{
    g_level.store(static_cast<int>(std::min(l, bestKernelLevel())), std::memory_order_relaxed);
}

const char* kernelLevelName(KernelLevel l)
{
    switch (l) {
    case KernelLevel::Avx512:
        return "avx512";
    case KernelLevel::Avx2:
        return "avx2";
    case KernelLevel::Baseline:
        break;
    }
    return "baseline";
}

void accumulateBlock(const float* x, size_t n, float shift, int order, BlockSums& out, uint32_t* keyTables)
{
    switch (level()) {
#if QS_DISPATCH && QS_KERNELS_X86
    case KernelLevel::Avx512:
        x86::accumulateAvx512(x, n, shift, order, out, keyTables);
        return;
    case KernelLevel::Avx2:
        x86::accumulateAvx2(x, n, shift, order, out, keyTables);
        return;
#endif
    default:
        break;
    }
    if (keyTables)
        countKeysF32(x, n, keyTables);
    if (order > 2)
        accumulate<Narrow, true>(x, n, shift, out);
    else
        accumulate<Narrow, false>(x, n, shift, out);
    out.absmax = out.finite ? std::max(std::fabs(out.min), std::fabs(out.max)) : 0.0f;
}

void accumulateBf16(const uint16_t* x, size_t n, float shift, BlockSums& out, uint32_t* keyTables)
{
    switch (level()) {
#if QS_DISPATCH && QS_KERNELS_X86
    case KernelLevel::Avx512:
        x86::accumulateBf16Avx512(x, n, shift, out, keyTables);
        return;
    case KernelLevel::Avx2:
        x86::accumulateBf16Avx2(x, n, shift, out, keyTables);
        return;
#endif
    default:
        break;
    }
    if (keyTables)
        countKeys16(x, n, keyTables);
    // Baseline: widen a slice at a time and reuse the float kernel.
    out = BlockSums{};
    float buffer[1024];
    for (size_t i = 0; i < n; i += 1024) {
        const size_t m = std::min<size_t>(1024, n - i);
        bf16ToFloats(x + i, m, buffer);
        BlockSums b;
        accumulate<Narrow, false>(buffer, m, shift, b);
        out.finite += b.finite;
        out.s1 += b.s1;
        out.s2 += b.s2;
        if (b.finite)
            out.absmax = std::max({out.absmax, std::fabs(b.min), std::fabs(b.max)});
    }
}

void f16ToFloats(const uint16_t* x, size_t n, float* out)
{
#if QS_DISPATCH && QS_KERNELS_X86
    // CPUID leaf 1, ECX bit 29: clang 14's __builtin_cpu_supports does not know "f16c".
    static const bool f16c = [] {
        unsigned a = 0, b = 0, c = 0, d = 0;
        return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C) != 0;
    }();
    if (f16c && level() != KernelLevel::Baseline) {
        x86::f16ToFloatsF16c(x, n, out);
        return;
    }
#endif
    for (size_t i = 0; i < n; ++i)
        out[i] = halfToFloat(x[i]);
}

uint64_t countOutside(const float* x, size_t n, float lo, float hi)
{
    return level() != KernelLevel::Baseline ? outsideWide(x, n, lo, hi) : outsideNarrow(x, n, lo, hi);
}

void bf16ToFloats(const uint16_t* x, size_t n, float* out)
{
    if (level() != KernelLevel::Baseline)
        widenWide(x, n, out);
    else
        widenNarrow(x, n, out);
}

void countKeysF32(const float* x, size_t n, uint32_t* tables)
{
    uint32_t* t0 = tables;
    uint32_t* t1 = tables + kKeys;
    uint32_t* t2 = tables + 2 * kKeys;
    uint32_t* t3 = tables + 3 * kKeys;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        __builtin_prefetch(reinterpret_cast<const char*>(x + i) + kPrefetch);
        uint32_t b[4];
        std::memcpy(b, x + i, sizeof b);
        ++t0[b[0] >> 16];
        ++t1[b[1] >> 16];
        ++t2[b[2] >> 16];
        ++t3[b[3] >> 16];
    }
    for (; i < n; ++i) {
        uint32_t b;
        std::memcpy(&b, x + i, sizeof b);
        ++t0[b >> 16];
    }
}

void countKeys16(const uint16_t* x, size_t n, uint32_t* tables)
{
    uint32_t* t0 = tables;
    uint32_t* t1 = tables + kKeys;
    uint32_t* t2 = tables + 2 * kKeys;
    uint32_t* t3 = tables + 3 * kKeys;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        __builtin_prefetch(reinterpret_cast<const char*>(x + i) + kPrefetch);
        uint64_t b;
        std::memcpy(&b, x + i, sizeof b);
        ++t0[b & 0xFFFF];
        ++t1[(b >> 16) & 0xFFFF];
        ++t2[(b >> 32) & 0xFFFF];
        ++t3[b >> 48];
    }
    for (; i < n; ++i)
        ++t0[x[i]];
}

void countKeys8(const uint8_t* x, size_t n, uint32_t* tables)
{
    uint32_t* t0 = tables;
    uint32_t* t1 = tables + kKeys;
    uint32_t* t2 = tables + 2 * kKeys;
    uint32_t* t3 = tables + 3 * kKeys;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        ++t0[x[i]];
        ++t1[x[i + 1]];
        ++t2[x[i + 2]];
        ++t3[x[i + 3]];
    }
    for (; i < n; ++i)
        ++t0[x[i]];
}

} // namespace qs::detail
