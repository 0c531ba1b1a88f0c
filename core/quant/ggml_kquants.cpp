// K-quant quantizers (Q2_K .. Q6_K): ggml's reference searches without importance, its
// importance-weighted searches with it. Super-blocks of 256 values, sub-block scales themselves
// quantized against one fp16 super-block scale (and min).
#include "core/model/dtype.h"
#include "core/quant/ggml_blocks.h"
#include "core/quant/ggml_rows.h"
#include "core/quant/ggml_search.h"
#include "core/quant/ggml_vec.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#if defined(__clang__)
#pragma clang fp contract(off)
#endif

namespace qs::ggml::detail {

namespace {

constexpr float kGroupMaxEps = 1e-15f;

template <typename Block> void storeBlock(unsigned char* dst, const Block& b)
{
    std::memcpy(dst, &b, sizeof b);
}

int clampLevel(int l, int lo, int hi)
{
    return std::max(lo, std::min(hi, l));
}

// Four 2-bit values per byte: byte l of each 32-byte half holds values l, l+32, l+64, l+96 of that half.
void packTwoBits(const uint8_t* L, uint8_t* qs)
{
    for (int j = 0; j < kSuperBlock; j += 128)
        for (int l = 0; l < 32; ++l)
            qs[j / 4 + l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) |
                                                 (L[j + l + 96] << 6));
}

// 6-bit scales and mins of the eight Q4_K / Q5_K sub-blocks into 12 bytes (inverse of unpackScaleMinK4).
void packScaleMinK4(const uint8_t* ls, const uint8_t* lm, uint8_t* packed)
{
    for (int j = 0; j < 4; ++j) {
        packed[j] = ls[j];
        packed[j + 4] = lm[j];
    }
    for (int j = 4; j < 8; ++j) {
        packed[j + 4] = static_cast<uint8_t>((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
        packed[j - 4] |= static_cast<uint8_t>((ls[j] >> 4) << 6);
        packed[j] |= static_cast<uint8_t>((lm[j] >> 4) << 6);
    }
}

// Six-bit unsigned levels (0..63) of the sixteen Q3_K sub-block scales into 12 bytes.
void packScalesQ3K(const int* levels, uint8_t* packed)
{
    std::memset(packed, 0, 12);
    for (int j = 0; j < 16; ++j) {
        const int l = levels[j];
        if (j < 8)
            packed[j] = static_cast<uint8_t>(l & 0xF);
        else
            packed[j - 8] |= static_cast<uint8_t>((l & 0xF) << 4);
        packed[j % 4 + 8] |= static_cast<uint8_t>((l >> 4) << (2 * (j / 4)));
    }
}

// Requantizes each sub-block of `size` values against its final (fp16-rounded) scale and min: the
// levels of the search were chosen for the unrounded ones.
template <int Size>
void requantizeAsym(const float* x, float d, float dmin, const uint8_t* scales, const uint8_t* mins, int nmax,
                    uint8_t* L)
{
    for (int j = 0; j < kSuperBlock / Size; ++j) {
        const float dl = d * static_cast<float>(scales[j]);
        if (!dl)
            continue;
        const float ml = dmin * static_cast<float>(mins[j]);
        for (int ii = 0; ii < Size; ++ii)
            L[Size * j + ii] =
                static_cast<uint8_t>(clampLevel(nearestInt((x[Size * j + ii] + ml) / dl), 0, nmax));
    }
}

float blockSumSquares(const float* x, int n)
{
    float sum = 0;
    for (int l = 0; l < n; ++l)
        sum += x[l] * x[l];
    return sum;
}

// ---------------------------------------------------------------------------------------------- Q2_K

void q2kBlockRef(const float* x, BlockQ2_K& y)
{
    uint8_t L[kSuperBlock];
    float weights[kSuperBlock], mins[16], scales[16];
    for (int l = 0; l < kSuperBlock; ++l)
        weights[l] = std::fabs(x[l]);
    makeQkxQuantsBatch<16>(false, 16, 3, x, weights, L, scales, mins, -0.5f, 0.1f, 15, true);
    float maxScale = 0, maxMin = 0;
    for (int j = 0; j < 16; ++j) {
        if (scales[j] > maxScale)
            maxScale = scales[j];
        if (mins[j] > maxMin)
            maxMin = mins[j];
    }
    uint8_t sc[16], mn[16];
    if (maxScale > 0) {
        const float iscale = 15.0f / maxScale;
        for (int j = 0; j < 16; ++j)
            sc[j] = static_cast<uint8_t>(nearestInt(iscale * scales[j]));
        y.d = floatToHalf(maxScale / 15.0f);
    } else {
        std::fill_n(sc, 16, uint8_t(0));
        y.d = floatToHalf(0.0f);
    }
    if (maxMin > 0) {
        const float iscale = 15.0f / maxMin;
        for (int j = 0; j < 16; ++j)
            mn[j] = static_cast<uint8_t>(nearestInt(iscale * mins[j]));
        y.dmin = floatToHalf(maxMin / 15.0f);
    } else {
        std::fill_n(mn, 16, uint8_t(0));
        y.dmin = floatToHalf(0.0f);
    }
    for (int j = 0; j < 16; ++j) {
        y.scales[j] = static_cast<uint8_t>(sc[j] | (mn[j] << 4));
        sc[j] = y.scales[j] & 0xF;
        mn[j] = y.scales[j] >> 4;
    }
    requantizeAsym<16>(x, halfToFloat(y.d), halfToFloat(y.dmin), sc, mn, 3, L);
    packTwoBits(L, y.qs);
}

void q2kBlockWeighted(const float* x, const float* qw, BlockQ2_K& y)
{
    uint8_t L[kSuperBlock], Ls[16], Lm[16];
    float mins[16], scales[16], sw[16], weight[kSuperBlock];
    const float sigma2 = blockSumSquares(x, kSuperBlock) / kSuperBlock;
    for (int l = 0; l < kSuperBlock; ++l)
        weight[l] = qw[l] * std::sqrt(sigma2 + x[l] * x[l]);
    for (int j = 0; j < 16; ++j) {
        sw[j] = 0;
        for (int l = 0; l < 16; ++l)
            sw[j] += weight[16 * j + l];
    }
    makeQkxQuantsBatch<16>(true, 16, 3, x, weight, L, scales, mins, -0.9f, 0.05f, 36, false);
    const float dm = makeQpQuants(16, 15, scales, Ls, sw);
    const float mm = makeQpQuants(16, 15, mins, Lm, sw);
    y.d = floatToHalf(dm);
    y.dmin = floatToHalf(mm);
    for (int j = 0; j < 16; ++j) {
        y.scales[j] = static_cast<uint8_t>(Ls[j] | (Lm[j] << 4));
        Ls[j] = y.scales[j] & 0xF;
        Lm[j] = y.scales[j] >> 4;
    }
    requantizeAsym<16>(x, halfToFloat(y.d), halfToFloat(y.dmin), Ls, Lm, 3, L);
    packTwoBits(L, y.qs);
}

// ---------------------------------------------------------------------------------------------- Q3_K

// Writes levels L (0..7) as 2 low bits in qs and the high bit in hmask (bit k of hmask[m] is value
// 32k + m).
void packQ3K(uint8_t* L, BlockQ3_K& y)
{
    std::memset(y.hmask, 0, sizeof y.hmask);
    for (int j = 0; j < kSuperBlock; ++j) {
        if (L[j] > 3) {
            y.hmask[j % 32] |= static_cast<uint8_t>(1u << (j / 32));
            L[j] -= 4;
        }
    }
    packTwoBits(L, y.qs);
}

void requantizeQ3K(const float* x, BlockQ3_K& y, uint8_t* L)
{
    const float d = halfToFloat(y.d);
    for (int j = 0; j < 16; ++j) {
        const float dl = d * static_cast<float>(unpackScaleQ3K(j, y.scales));
        if (!dl)
            continue;
        for (int ii = 0; ii < 16; ++ii)
            L[16 * j + ii] = static_cast<uint8_t>(clampLevel(nearestInt(x[16 * j + ii] / dl), -4, 3) + 4);
    }
}

void q3kBlockRef(const float* x, BlockQ3_K& y)
{
    int8_t L[kSuperBlock];
    float scales[16];
    float maxScale = 0, amax = 0;
    const bool vec = makeQ3QuantsVec(x, L, scales); // all 16 groups at once, the scalar's results
    for (int j = 0; j < 16; ++j) {
        if (!vec)
            scales[j] = makeQ3Quants(16, 4, x + 16 * j, L + 16 * j);
        const float s = std::fabs(scales[j]);
        if (s > amax) {
            amax = s;
            maxScale = scales[j];
        }
    }
    if (maxScale) {
        const float iscale = -32.0f / maxScale;
        int levels[16];
        for (int j = 0; j < 16; ++j) {
            const auto l = static_cast<int8_t>(nearestInt(iscale * scales[j]));
            levels[j] = clampLevel(l, -32, 31) + 32;
        }
        packScalesQ3K(levels, y.scales);
        y.d = floatToHalf(1 / iscale);
    } else {
        std::memset(y.scales, 0, sizeof y.scales);
        y.d = floatToHalf(0.0f);
    }
    auto* U = reinterpret_cast<uint8_t*>(L);
    requantizeQ3K(x, y, U);
    packQ3K(U, y);
}

void q3kBlockWeighted(const float* x, const float* qw, BlockQ3_K& y)
{
    int8_t L[kSuperBlock], Ls[16];
    float scales[16], weight[kSuperBlock], sw[16];
    const float sigma2 = 2 * blockSumSquares(x, kSuperBlock) / kSuperBlock;
    for (int l = 0; l < kSuperBlock; ++l)
        weight[l] = qw[l] * std::sqrt(sigma2 + x[l] * x[l]);
    for (int j = 0; j < 16; ++j) {
        float sumw = 0;
        for (int l = 0; l < 16; ++l)
            sumw += weight[16 * j + l];
        sw[j] = sumw;
    }
    makeQxQuantsBatch<16>(16, 4, x, weight, L, scales);
    const float dBlock = makeQxQuants(16, 32, scales, Ls, 1, sw);
    int levels[16];
    for (int j = 0; j < 16; ++j)
        levels[j] = Ls[j];
    packScalesQ3K(levels, y.scales);
    y.d = floatToHalf(dBlock);
    auto* U = reinterpret_cast<uint8_t*>(L);
    requantizeQ3K(x, y, U);
    packQ3K(U, y);
}

// ------------------------------------------------------------------------------------- Q4_K and Q5_K

// The sub-block search shared by Q4_K (nmax 15) and Q5_K (nmax 31); fills scale/min levels, the
// packed scales and d / dmin, and leaves the requantized levels in L.
template <typename Block>
void qkxSuperBlockRef(const float* x, int nmax, float rmin, float rdelta, int nstep, Block& y, uint8_t* L)
{
    float weights[kSuperBlock], mins[8], scales[8];
    for (int j = 0; j < 8; ++j) {
        const float* xb = x + 32 * j;
        const float avx = std::sqrt(blockSumSquares(xb, 32) / 32);
        for (int l = 0; l < 32; ++l)
            weights[32 * j + l] = avx + std::fabs(xb[l]);
    }
    makeQkxQuantsBatch<8>(false, 32, nmax, x, weights, L, scales, mins, rmin, rdelta, nstep, false);
    float maxScale = 0, maxMin = 0;
    for (int j = 0; j < 8; ++j) {
        if (scales[j] > maxScale)
            maxScale = scales[j];
        if (mins[j] > maxMin)
            maxMin = mins[j];
    }
    const float invScale = maxScale > 0 ? 63.0f / maxScale : 0.0f;
    const float invMin = maxMin > 0 ? 63.0f / maxMin : 0.0f;
    uint8_t ls[8], lm[8];
    for (int j = 0; j < 8; ++j) {
        ls[j] = std::min<uint8_t>(63, static_cast<uint8_t>(nearestInt(invScale * scales[j])));
        lm[j] = std::min<uint8_t>(63, static_cast<uint8_t>(nearestInt(invMin * mins[j])));
    }
    packScaleMinK4(ls, lm, y.scales);
    y.d = floatToHalf(maxScale / 63.0f);
    y.dmin = floatToHalf(maxMin / 63.0f);
    requantizeAsym<32>(x, halfToFloat(y.d), halfToFloat(y.dmin), ls, lm, nmax, L);
}

template <typename Block>
void qkxSuperBlockWeighted(const float* x, const float* qw, int nmax, Block& y, uint8_t* L)
{
    uint8_t Ls[8], Lm[8];
    float weights[kSuperBlock], sw[8], mins[8], scales[8];
    const float sigma2 = 2 * blockSumSquares(x, kSuperBlock) / kSuperBlock;
    for (int l = 0; l < kSuperBlock; ++l)
        weights[l] = qw[l] * std::sqrt(sigma2 + x[l] * x[l]);
    for (int j = 0; j < 8; ++j) {
        float sumw = 0;
        for (int l = 0; l < 32; ++l)
            sumw += weights[32 * j + l];
        sw[j] = sumw;
    }
    makeQkxQuantsBatch<8>(true, 32, nmax, x, weights, L, scales, mins, -0.9f, 0.05f, 36, false);
    const float dBlock = makeQpQuants(8, 63, scales, Ls, sw);
    const float mBlock = makeQpQuants(8, 63, mins, Lm, sw);
    for (int j = 0; j < 8; ++j) {
        Ls[j] = std::min<uint8_t>(63, Ls[j]);
        Lm[j] = std::min<uint8_t>(63, Lm[j]);
    }
    packScaleMinK4(Ls, Lm, y.scales);
    y.d = floatToHalf(dBlock);
    y.dmin = floatToHalf(mBlock);
    requantizeAsym<32>(x, halfToFloat(y.d), halfToFloat(y.dmin), Ls, Lm, nmax, L);
}

void packQ4K(const uint8_t* L, BlockQ4_K& y)
{
    uint8_t* q = y.qs;
    for (int j = 0; j < kSuperBlock; j += 64, q += 32)
        for (int l = 0; l < 32; ++l)
            q[l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 4));
}

void packQ5K(const uint8_t* L, BlockQ5_K& y)
{
    std::memset(y.qh, 0, sizeof y.qh);
    uint8_t* ql = y.qs;
    uint8_t m1 = 1, m2 = 2;
    for (int n = 0; n < kSuperBlock; n += 64, ql += 32, m1 <<= 2, m2 <<= 2) {
        for (int j = 0; j < 32; ++j) {
            int l1 = L[n + j], l2 = L[n + j + 32];
            if (l1 > 15) {
                l1 -= 16;
                y.qh[j] |= m1;
            }
            if (l2 > 15) {
                l2 -= 16;
                y.qh[j] |= m2;
            }
            ql[j] = static_cast<uint8_t>(l1 | (l2 << 4));
        }
    }
}

// ---------------------------------------------------------------------------------------------- Q6_K

void q6kBlock(const float* x, const float* qw, BlockQ6_K& y)
{
    int8_t L[kSuperBlock];
    float scales[16];
    float maxScale = 0, maxAbsScale = 0;
    // ggml weights Q6_K by the raw importance (no variance term), and by x^2 without it.
    float squares[kSuperBlock];
    if (!qw) {
        for (int l = 0; l < kSuperBlock; ++l)
            squares[l] = x[l] * x[l];
    }
    makeQxQuantsBatch<16>(16, 32, x, qw ? qw : squares, L, scales);
    for (int ib = 0; ib < 16; ++ib) {
        const float a = std::fabs(scales[ib]);
        if (a > maxAbsScale) {
            maxAbsScale = a;
            maxScale = scales[ib];
        }
    }
    if (maxAbsScale < kGroupMaxEps) {
        std::memset(&y, 0, sizeof y);
        return;
    }
    const float iscale = -128.0f / maxScale;
    y.d = floatToHalf(1 / iscale);
    for (int ib = 0; ib < 16; ++ib)
        y.scales[ib] = static_cast<int8_t>(std::min(127, nearestInt(iscale * scales[ib])));
    const float d = halfToFloat(y.d);
    for (int j = 0; j < 16; ++j) {
        const float dl = d * static_cast<float>(y.scales[j]);
        if (!dl)
            continue;
        for (int ii = 0; ii < 16; ++ii)
            L[16 * j + ii] = static_cast<int8_t>(clampLevel(nearestInt(x[16 * j + ii] / dl), -32, 31) + 32);
    }
    uint8_t* ql = y.ql;
    uint8_t* qh = y.qh;
    for (int j = 0; j < kSuperBlock; j += 128, ql += 64, qh += 32) {
        for (int l = 0; l < 32; ++l) {
            const int v0 = L[j + l], v1 = L[j + l + 32], v2 = L[j + l + 64], v3 = L[j + l + 96];
            ql[l] = static_cast<uint8_t>((v0 & 0xF) | ((v2 & 0xF) << 4));
            ql[l + 32] = static_cast<uint8_t>((v1 & 0xF) | ((v3 & 0xF) << 4));
            qh[l] = static_cast<uint8_t>((v0 >> 4) | ((v1 >> 4) << 2) | ((v2 >> 4) << 4) | ((v3 >> 4) << 6));
        }
    }
}

} // namespace

void quantizeRowQ2_K(const float* x, int64_t n, unsigned char* dst, const float* importance)
{
    for (int64_t i = 0; i < n / kSuperBlock; ++i, x += kSuperBlock, dst += sizeof(BlockQ2_K)) {
        BlockQ2_K y;
        if (importance)
            q2kBlockWeighted(x, importance + kSuperBlock * i, y);
        else
            q2kBlockRef(x, y);
        storeBlock(dst, y);
    }
}

void quantizeRowQ3_K(const float* x, int64_t n, unsigned char* dst, const float* importance)
{
    for (int64_t i = 0; i < n / kSuperBlock; ++i, x += kSuperBlock, dst += sizeof(BlockQ3_K)) {
        BlockQ3_K y;
        if (importance)
            q3kBlockWeighted(x, importance + kSuperBlock * i, y);
        else
            q3kBlockRef(x, y);
        storeBlock(dst, y);
    }
}

void quantizeRowQ4_K(const float* x, int64_t n, unsigned char* dst, const float* importance)
{
    uint8_t L[kSuperBlock];
    for (int64_t i = 0; i < n / kSuperBlock; ++i, x += kSuperBlock, dst += sizeof(BlockQ4_K)) {
        BlockQ4_K y;
        if (importance)
            qkxSuperBlockWeighted(x, importance + kSuperBlock * i, 15, y, L);
        else
            qkxSuperBlockRef(x, 15, -1.0f, 0.1f, 20, y, L);
        packQ4K(L, y);
        storeBlock(dst, y);
    }
}

void quantizeRowQ5_K(const float* x, int64_t n, unsigned char* dst, const float* importance)
{
    uint8_t L[kSuperBlock];
    for (int64_t i = 0; i < n / kSuperBlock; ++i, x += kSuperBlock, dst += sizeof(BlockQ5_K)) {
        BlockQ5_K y;
        if (importance)
            qkxSuperBlockWeighted(x, importance + kSuperBlock * i, 31, y, L);
        else
            qkxSuperBlockRef(x, 31, -0.5f, 0.1f, 15, y, L);
        packQ5K(L, y);
        storeBlock(dst, y);
    }
}

void quantizeRowQ6_K(const float* x, int64_t n, unsigned char* dst, const float* importance)
{
    for (int64_t i = 0; i < n / kSuperBlock; ++i, x += kSuperBlock, dst += sizeof(BlockQ6_K)) {
        BlockQ6_K y;
        q6kBlock(x, importance ? importance + kSuperBlock * i : nullptr, y);
        storeBlock(dst, y);
    }
}

} // namespace qs::ggml::detail
