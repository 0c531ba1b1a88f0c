// AVX2 and AVX-512 versions of the block kernels (see kernels.h). Each function is compiled for its
// instruction set through a target attribute and only called after a run-time CPU check (kernels.cpp),
// so the binary still runs on any x86-64. Results equal the baseline's up to summation order.
#include "core/stats/kernels.h"

#if QS_KERNELS_X86

// GCC 12's AVX-512 headers trip these on their own _mm512_undefined_* helpers.
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <immintrin.h>
#include <limits>

namespace qs::detail::x86 {

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
// Software prefetch distance in bytes. The hardware streamer stops at 4 KiB page boundaries, and mapped
// model files come in 4 KiB pages: prefetching a page ahead keeps the loads flowing (about 1.6x here).
constexpr size_t kPrefetch = 4096;

// Adds the scalar tail [i, n) to partially reduced block results.
template <bool Fourth> void tail(const float* x, size_t i, size_t n, float shift, BlockSums& out)
{
    for (; i < n; ++i) {
        const float v = x[i];
        if (v != v) {
            ++out.nan;
            continue;
        }
        if (std::fabs(v) == kInf) {
            ++out.inf;
            continue;
        }
        ++out.finite;
        out.min = v < out.min ? v : out.min;
        out.max = v > out.max ? v : out.max;
        out.zeros += v == 0;
        const double d = double(v) - double(shift), q = d * d;
        out.s1 += d;
        out.s2 += q;
        if constexpr (Fourth) {
            out.s3 += q * d;
            out.s4 += q * q;
        }
    }
}

// The scalar tail [i, n) of a BF16 block (its keys counted when Count).
template <bool Count> void bf16Tail(const uint16_t* x, size_t i, size_t n, float shift, BlockSums& out, uint32_t* keys)
{
    if constexpr (Count)
        for (size_t k = i; k < n; ++k)
            ++keys[x[k]];
    for (; i < n; ++i) {
        const float v = std::bit_cast<float>(uint32_t(x[i]) << 16);
        if (!std::isfinite(v))
            continue;
        ++out.finite;
        out.absmax = std::max(out.absmax, std::fabs(v));
        const double d = double(v) - double(shift);
        out.s1 += d;
        out.s2 += d * d;
    }
}

// Key counting fused into the vector loops: the scalar increments and the SIMD arithmetic use different
// execution ports, so one pass over the block does both for little more than the cost of either.
inline void countF32(const float* x, uint32_t* t)
{
    uint32_t b[4];
    std::memcpy(b, x, sizeof b);
    ++t[b[0] >> 16];
    ++t[kKeys + (b[1] >> 16)];
    ++t[2 * kKeys + (b[2] >> 16)];
    ++t[3 * kKeys + (b[3] >> 16)];
}

inline void count16(const uint16_t* x, uint32_t* t)
{
    uint64_t b;
    std::memcpy(&b, x, sizeof b);
    ++t[b & 0xFFFF];
    ++t[kKeys + ((b >> 16) & 0xFFFF)];
    ++t[2 * kKeys + ((b >> 32) & 0xFFFF)];
    ++t[3 * kKeys + (b >> 48)];
}

// ---- AVX2 ----------------------------------------------------------------------------------------------

__attribute__((target("avx2,fma"))) inline double hsum256(__m256d v)
{
    const __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

__attribute__((target("avx2,fma"))) inline uint64_t hsum256i(__m256i v)
{
    alignas(32) uint32_t lanes[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), v);
    uint64_t t = 0;
    for (uint32_t l : lanes)
        t += l;
    return t;
}

template <bool Fourth, bool Count>
__attribute__((target("avx2,fma"))) inline void f32Avx2(const float* x, size_t n, float shift, BlockSums& out,
                                                        uint32_t* keys)
{
    const __m256 absMask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    const __m256 inf = _mm256_set1_ps(kInf), vshift = _mm256_set1_ps(shift), zero = _mm256_setzero_ps();
    const __m256d sh = _mm256_set1_pd(double(shift));
    __m256 mn = inf, mx = _mm256_set1_ps(-kInf);
    __m256i zeros = _mm256_setzero_si256(), nans = zeros, infs = zeros, fins = zeros;
    __m256d s1a = _mm256_setzero_pd(), s1b = s1a, s2a = s1a, s2b = s1a, s3a = s1a, s3b = s1a, s4a = s1a,
            s4b = s1a;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        _mm_prefetch(reinterpret_cast<const char*>(x + i) + kPrefetch, _MM_HINT_T0);
        if constexpr (Count) {
            countF32(x + i, keys);
            countF32(x + i + 4, keys);
        }
        const __m256 v = _mm256_loadu_ps(x + i);
        const __m256 a = _mm256_and_ps(v, absMask);
        const __m256 fin = _mm256_cmp_ps(a, inf, _CMP_LT_OQ);
        mn = _mm256_min_ps(mn, _mm256_blendv_ps(inf, v, fin));
        mx = _mm256_max_ps(mx, _mm256_blendv_ps(_mm256_set1_ps(-kInf), v, fin));
        fins = _mm256_sub_epi32(fins, _mm256_castps_si256(fin));
        zeros = _mm256_sub_epi32(zeros, _mm256_castps_si256(_mm256_cmp_ps(v, zero, _CMP_EQ_OQ)));
        nans = _mm256_sub_epi32(nans, _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
        infs = _mm256_sub_epi32(infs, _mm256_castps_si256(_mm256_cmp_ps(a, inf, _CMP_EQ_OQ)));
        const __m256 vf = _mm256_blendv_ps(vshift, v, fin);
        const __m256d d0 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(vf)), sh);
        const __m256d d1 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(vf, 1)), sh);
        s1a = _mm256_add_pd(s1a, d0);
        s1b = _mm256_add_pd(s1b, d1);
        const __m256d q0 = _mm256_mul_pd(d0, d0), q1 = _mm256_mul_pd(d1, d1);
        s2a = _mm256_add_pd(s2a, q0);
        s2b = _mm256_add_pd(s2b, q1);
        if constexpr (Fourth) {
            s3a = _mm256_fmadd_pd(q0, d0, s3a);
            s3b = _mm256_fmadd_pd(q1, d1, s3b);
            s4a = _mm256_fmadd_pd(q0, q0, s4a);
            s4b = _mm256_fmadd_pd(q1, q1, s4b);
        }
    }
    alignas(32) float lmn[8], lmx[8];
    _mm256_store_ps(lmn, mn);
    _mm256_store_ps(lmx, mx);
    out = BlockSums{};
    out.min = kInf;
    out.max = -kInf;
    for (int l = 0; l < 8; ++l) {
        out.min = lmn[l] < out.min ? lmn[l] : out.min;
        out.max = lmx[l] > out.max ? lmx[l] : out.max;
    }
    out.finite = hsum256i(fins);
    out.zeros = hsum256i(zeros);
    out.nan = hsum256i(nans);
    out.inf = hsum256i(infs);
    out.s1 = hsum256(_mm256_add_pd(s1a, s1b));
    out.s2 = hsum256(_mm256_add_pd(s2a, s2b));
    out.s3 = hsum256(_mm256_add_pd(s3a, s3b));
    out.s4 = hsum256(_mm256_add_pd(s4a, s4b));
    if constexpr (Count)
        for (size_t k = i; k < n; ++k)
            ++keys[std::bit_cast<uint32_t>(x[k]) >> 16];
    tail<Fourth>(x, i, n, shift, out);
}

// BF16 rows: finite count, absmax and the first two shifted power sums, straight from the bit patterns.
template <bool Count>
__attribute__((target("avx2,fma"))) void bf16Avx2(const uint16_t* x, size_t n, float shift, BlockSums& out,
                                                  uint32_t* keys)
{
    const __m256 absMask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    const __m256 inf = _mm256_set1_ps(kInf), vshift = _mm256_set1_ps(shift);
    const __m256d sh = _mm256_set1_pd(double(shift));
    __m256 amax = _mm256_setzero_ps();
    __m256i fins = _mm256_setzero_si256();
    __m256d s1a = _mm256_setzero_pd(), s1b = s1a, s2a = s1a, s2b = s1a;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        _mm_prefetch(reinterpret_cast<const char*>(x + i) + kPrefetch, _MM_HINT_T0);
        if constexpr (Count) {
            count16(x + i, keys);
            count16(x + i + 4, keys);
        }
        const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i));
        const __m256 v = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
        const __m256 a = _mm256_and_ps(v, absMask);
        const __m256 fin = _mm256_cmp_ps(a, inf, _CMP_LT_OQ);
        amax = _mm256_max_ps(amax, _mm256_and_ps(a, fin));
        fins = _mm256_sub_epi32(fins, _mm256_castps_si256(fin));
        const __m256 vf = _mm256_blendv_ps(vshift, v, fin);
        const __m256d d0 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(vf)), sh);
        const __m256d d1 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(vf, 1)), sh);
        s1a = _mm256_add_pd(s1a, d0);
        s1b = _mm256_add_pd(s1b, d1);
        s2a = _mm256_fmadd_pd(d0, d0, s2a);
        s2b = _mm256_fmadd_pd(d1, d1, s2b);
    }
    alignas(32) float la[8];
    _mm256_store_ps(la, amax);
    out = BlockSums{};
    for (float v : la)
        out.absmax = v > out.absmax ? v : out.absmax;
    out.finite = hsum256i(fins);
    out.s1 = hsum256(_mm256_add_pd(s1a, s1b));
    out.s2 = hsum256(_mm256_add_pd(s2a, s2b));
    bf16Tail<Count>(x, i, n, shift, out, keys);
}

// ---- AVX-512 -------------------------------------------------------------------------------------------

#define QS_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,fma")))

QS_AVX512 inline __m256 upperHalf(__m512 v)
{
    return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
}

template <bool Fourth, bool Count>
QS_AVX512 inline void f32Avx512(const float* x, size_t n, float shift, BlockSums& out, uint32_t* keys)
{
    const __m512 inf = _mm512_set1_ps(kInf), vshift = _mm512_set1_ps(shift), zero = _mm512_setzero_ps();
    const __m512d sh = _mm512_set1_pd(double(shift));
    const __m512i one = _mm512_set1_epi32(1);
    __m512 mn = inf, mx = _mm512_set1_ps(-kInf);
    __m512i zeros = _mm512_setzero_si512(), nans = zeros, infs = zeros, fins = zeros;
    __m512d s1a = _mm512_setzero_pd(), s1b = s1a, s2a = s1a, s2b = s1a, s3a = s1a, s3b = s1a, s4a = s1a,
            s4b = s1a;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        _mm_prefetch(reinterpret_cast<const char*>(x + i) + kPrefetch, _MM_HINT_T0);
        if constexpr (Count) {
            for (int q = 0; q < 16; q += 4)
                countF32(x + i + q, keys);
        }
        const __m512 v = _mm512_loadu_ps(x + i);
        const __m512 a = _mm512_abs_ps(v);
        const __mmask16 fin = _mm512_cmp_ps_mask(a, inf, _CMP_LT_OQ);
        mn = _mm512_mask_min_ps(mn, fin, mn, v);
        mx = _mm512_mask_max_ps(mx, fin, mx, v);
        fins = _mm512_mask_add_epi32(fins, fin, fins, one);
        zeros = _mm512_mask_add_epi32(zeros, _mm512_cmp_ps_mask(v, zero, _CMP_EQ_OQ), zeros, one);
        nans = _mm512_mask_add_epi32(nans, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), nans, one);
        infs = _mm512_mask_add_epi32(infs, _mm512_cmp_ps_mask(a, inf, _CMP_EQ_OQ), infs, one);
        const __m512 vf = _mm512_mask_blend_ps(fin, vshift, v);
        const __m512d d0 = _mm512_sub_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(vf)), sh);
        const __m512d d1 = _mm512_sub_pd(_mm512_cvtps_pd(upperHalf(vf)), sh);
        s1a = _mm512_add_pd(s1a, d0);
        s1b = _mm512_add_pd(s1b, d1);
        const __m512d q0 = _mm512_mul_pd(d0, d0), q1 = _mm512_mul_pd(d1, d1);
        s2a = _mm512_add_pd(s2a, q0);
        s2b = _mm512_add_pd(s2b, q1);
        if constexpr (Fourth) {
            s3a = _mm512_fmadd_pd(q0, d0, s3a);
            s3b = _mm512_fmadd_pd(q1, d1, s3b);
            s4a = _mm512_fmadd_pd(q0, q0, s4a);
            s4b = _mm512_fmadd_pd(q1, q1, s4b);
        }
    }
    out = BlockSums{};
    out.min = std::min(_mm512_reduce_min_ps(mn), kInf);
    out.max = std::max(_mm512_reduce_max_ps(mx), -kInf);
    out.finite = uint64_t(uint32_t(_mm512_reduce_add_epi32(fins)));
    out.zeros = uint64_t(uint32_t(_mm512_reduce_add_epi32(zeros)));
    out.nan = uint64_t(uint32_t(_mm512_reduce_add_epi32(nans)));
    out.inf = uint64_t(uint32_t(_mm512_reduce_add_epi32(infs)));
    out.s1 = _mm512_reduce_add_pd(_mm512_add_pd(s1a, s1b));
    out.s2 = _mm512_reduce_add_pd(_mm512_add_pd(s2a, s2b));
    out.s3 = _mm512_reduce_add_pd(_mm512_add_pd(s3a, s3b));
    out.s4 = _mm512_reduce_add_pd(_mm512_add_pd(s4a, s4b));
    if constexpr (Count)
        for (size_t k = i; k < n; ++k)
            ++keys[std::bit_cast<uint32_t>(x[k]) >> 16];
    tail<Fourth>(x, i, n, shift, out);
}

template <bool Count>
QS_AVX512 void bf16Avx512(const uint16_t* x, size_t n, float shift, BlockSums& out, uint32_t* keys)
{
    const __m512 inf = _mm512_set1_ps(kInf), vshift = _mm512_set1_ps(shift);
    const __m512d sh = _mm512_set1_pd(double(shift));
    const __m512i one = _mm512_set1_epi32(1);
    __m512 amax = _mm512_setzero_ps();
    __m512i fins = _mm512_setzero_si512();
    __m512d s1a = _mm512_setzero_pd(), s1b = s1a, s2a = s1a, s2b = s1a;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        _mm_prefetch(reinterpret_cast<const char*>(x + i) + kPrefetch, _MM_HINT_T0);
        if constexpr (Count) {
            for (int q = 0; q < 16; q += 4)
                count16(x + i + q, keys);
        }
        const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i));
        const __m512 v = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
        const __m512 a = _mm512_abs_ps(v);
        const __mmask16 fin = _mm512_cmp_ps_mask(a, inf, _CMP_LT_OQ);
        amax = _mm512_mask_max_ps(amax, fin, amax, a);
        fins = _mm512_mask_add_epi32(fins, fin, fins, one);
        const __m512 vf = _mm512_mask_blend_ps(fin, vshift, v);
        const __m512d d0 = _mm512_sub_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(vf)), sh);
        const __m512d d1 = _mm512_sub_pd(_mm512_cvtps_pd(upperHalf(vf)), sh);
        s1a = _mm512_add_pd(s1a, d0);
        s1b = _mm512_add_pd(s1b, d1);
        s2a = _mm512_fmadd_pd(d0, d0, s2a);
        s2b = _mm512_fmadd_pd(d1, d1, s2b);
    }
    out = BlockSums{};
    out.absmax = _mm512_reduce_max_ps(amax);
    out.finite = uint64_t(uint32_t(_mm512_reduce_add_epi32(fins)));
    out.s1 = _mm512_reduce_add_pd(_mm512_add_pd(s1a, s1b));
    out.s2 = _mm512_reduce_add_pd(_mm512_add_pd(s2a, s2b));
    bf16Tail<Count>(x, i, n, shift, out, keys);
}

} // namespace

void accumulateAvx2(const float* x, size_t n, float shift, int order, BlockSums& out, uint32_t* keys)
{
    if (keys)
        order > 2 ? f32Avx2<true, true>(x, n, shift, out, keys)
                  : f32Avx2<false, true>(x, n, shift, out, keys);
    else
        order > 2 ? f32Avx2<true, false>(x, n, shift, out, keys)
                  : f32Avx2<false, false>(x, n, shift, out, keys);
    out.absmax = out.finite ? std::max(std::fabs(out.min), std::fabs(out.max)) : 0.0f;
}

void accumulateAvx512(const float* x, size_t n, float shift, int order, BlockSums& out, uint32_t* keys)
{
    if (keys)
        order > 2 ? f32Avx512<true, true>(x, n, shift, out, keys)
                  : f32Avx512<false, true>(x, n, shift, out, keys);
    else
        order > 2 ? f32Avx512<true, false>(x, n, shift, out, keys)
                  : f32Avx512<false, false>(x, n, shift, out, keys);
    out.absmax = out.finite ? std::max(std::fabs(out.min), std::fabs(out.max)) : 0.0f;
}

void accumulateBf16Avx2(const uint16_t* x, size_t n, float shift, BlockSums& out, uint32_t* keys)
{
    keys ? bf16Avx2<true>(x, n, shift, out, keys) : bf16Avx2<false>(x, n, shift, out, keys);
}

void accumulateBf16Avx512(const uint16_t* x, size_t n, float shift, BlockSums& out, uint32_t* keys)
{
    keys ? bf16Avx512<true>(x, n, shift, out, keys) : bf16Avx512<false>(x, n, shift, out, keys);
}

__attribute__((target("avx2,f16c"))) void f16ToFloatsF16c(const uint16_t* x, size_t n, float* out)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i))));
    if (i < n) {
        alignas(16) uint16_t h[8] = {};
        alignas(32) float f[8];
        std::memcpy(h, x + i, (n - i) * sizeof(uint16_t));
        _mm256_store_ps(f, _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(h))));
        std::memcpy(out + i, f, (n - i) * sizeof(float));
    }
}

} // namespace qs::detail::x86

#endif
