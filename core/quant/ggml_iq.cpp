// Non-linear 4-bit quantizers: IQ4_NL (blocks of 32, one fp16 scale), IQ4_XS (super-blocks of 256 with
// 6-bit sub-block scales) and MXFP4 (E8M0 exponent + E2M1 values). The IQ4 search is ggml's: for each
// block try 15 scales around max/level[0], keep the weighted least-squares best.
#include "core/model/dtype.h"
#include "core/quant/ggml_blocks.h"
#include "core/quant/ggml_rows.h"
#include "core/quant/ggml_search.h"
#include "core/quant/ggml_simd.h"
#include "core/quant/ggml_vec.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#if defined(__clang__)
#pragma clang fp contract(off)
#endif

namespace qs::ggml::detail {

namespace {

constexpr float kGroupMaxEps = 1e-15f;
constexpr int kTries = 7; // scales (level0 + t) / max for t in [-7, 7]

// Index of the IQ4 level nearest x; ties go to the upper level (x picks level k once 2x reaches
// level[k-1] + level[k]). Those midpoint sums are integers, so the answer only depends on floor(2x) and a
// table over floor(2x) gives exactly what the midpoint comparisons would, without a search.
constexpr int kLowestMid = kIq4nlValues[0] + kIq4nlValues[1];
constexpr int kHighestMid = kIq4nlValues[14] + kIq4nlValues[15];
constexpr auto kLevelOfFloor2x = [] {
    std::array<uint8_t, kHighestMid - kLowestMid + 1> table{};
    for (int f = kLowestMid; f <= kHighestMid; ++f) {
        int idx = 0;
        for (int k = 1; k < 16; ++k)
            if (f >= kIq4nlValues[k - 1] + kIq4nlValues[k])
                idx = k;
        table[f - kLowestMid] = static_cast<uint8_t>(idx);
    }
    return table;
}();

// The level value for floor(2x) in [kLowestMid - 1, kHighestMid] (the batched search reads values).
constexpr auto kValueOfFloor2x = [] {
    std::array<float, kHighestMid - kLowestMid + 2> table{};
    table[0] = kIq4nlValues[0];
    for (int f = kLowestMid; f <= kHighestMid; ++f)
        table[f - kLowestMid + 1] = kIq4nlValues[kLevelOfFloor2x[f - kLowestMid]];
    return table;
}();

int nearestIq4Level(float x)
{
    const float x2 = x + x;
    if (!(x2 >= static_cast<float>(kLowestMid))) // also NaN
        return 0;
    if (x2 >= static_cast<float>(kHighestMid))
        return 15;
    int f = static_cast<int>(x2);
    if (static_cast<float>(f) > x2)
        --f; // floor
    return kLevelOfFloor2x[f - kLowestMid];
}

} // namespace

float iq4Scale(const float* xb, const float* weight)
{
    float amax = 0, max = 0;
    for (int j = 0; j < 32; ++j) {
        const float ax = std::fabs(xb[j]);
        if (ax > amax) {
            amax = ax;
            max = xb[j];
        }
    }
    if (amax < kGroupMaxEps)
        return 0.0f;
    const float level0 = kIq4nlValues[0];
    float d = -max / level0;
    float id = 1 / d;
    float sumqx = 0, sumq2 = 0;
    for (int j = 0; j < 32; ++j) {
        const float q = kIq4nlValues[nearestIq4Level(id * xb[j])];
        sumqx += weight[j] * q * xb[j];
        sumq2 += weight[j] * q * q;
    }
    d = sumq2 > 0 ? sumqx / sumq2 : 0.0f;
    float best = d * sumqx;
    for (int t = -kTries; t <= kTries; ++t) {
        id = (static_cast<float>(t) + level0) / max;
        sumqx = sumq2 = 0;
        for (int j = 0; j < 32; ++j) {
            const float q = kIq4nlValues[nearestIq4Level(id * xb[j])];
            sumqx += weight[j] * q * xb[j];
            sumq2 += weight[j] * q * q;
        }
        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    return d;
}

namespace {

// The level value nearest each lane of x (as nearestIq4Level, then the level), for the batched search.
F4 nearestIq4Value4(F4 x)
{
    // Clamp 2x into [lowest mid - 1, highest mid] (NaN to the bottom), then index the table by floor(2x).
    constexpr float kLow = static_cast<float>(kLowestMid - 1), kHigh = static_cast<float>(kHighestMid);
    F4 x2 = x + x;
    x2 = select(x2 >= splat(kLow), x2, splat(kLow));
    x2 = select(x2 > splat(kHigh), splat(kHigh), x2);
    I4 f = __builtin_convertvector(x2, I4);                                     // truncation
    f -= select(__builtin_convertvector(f, F4) > x2, splatInt(1), splatInt(0)); // floor
    F4 q;
    for (int k = 0; k < 4; ++k)
        q[k] = kValueOfFloor2x[f[k] - (kLowestMid - 1)];
    return q;
}

} // namespace

void iq4ScalesBatch8(const float* x, const float* w, float* scales)
{
    constexpr int G = 8, V = 2;
    float max[G];
    bool live[G];
    for (int g = 0; g < G; ++g) {
        float amax = 0;
        max[g] = 0;
        for (int j = 0; j < 32; ++j) {
            const float ax = std::fabs(x[32 * g + j]);
            if (ax > amax) {
                amax = ax;
                max[g] = x[32 * g + j];
            }
        }
        live[g] = !(amax < kGroupMaxEps);
        if (!live[g])
            max[g] = 1.0f; // keeps the shared arithmetic finite
    }
    F4 xt[32][V], wt[32][V];
    for (int j = 0; j < 32; ++j)
        for (int v = 0; v < V; ++v)
            for (int k = 0; k < 4; ++k) {
                xt[j][v][k] = x[32 * (4 * v + k) + j];
                wt[j][v][k] = w[32 * (4 * v + k) + j];
            }
    const float level0 = kIq4nlValues[0];
    float d[G], best[G];
    // Trial 0 starts from d = -max / level0 (id = 1 / d); then id = (t + level0) / max, t = -7..7.
    for (int trial = 0; trial <= 2 * kTries + 1; ++trial) {
        F4 id4[V], sumqx[V], sumq2[V];
        for (int v = 0; v < V; ++v) {
            for (int k = 0; k < 4; ++k) {
                const float m = max[4 * v + k];
                id4[v][k] =
                    trial == 0 ? 1 / (-m / level0) : (static_cast<float>(trial - 1 - kTries) + level0) / m;
            }
            sumqx[v] = sumq2[v] = splat(0.0f);
        }
        for (int j = 0; j < 32; ++j) {
            for (int v = 0; v < V; ++v) {
                const F4 q = nearestIq4Value4(id4[v] * xt[j][v]);
                sumqx[v] += wt[j][v] * q * xt[j][v];
                sumq2[v] += wt[j][v] * q * q;
            }
        }
        for (int g = 0; g < G; ++g) {
            const float sqx = sumqx[g / 4][g % 4], sq2 = sumq2[g / 4][g % 4];
            if (trial == 0) {
                d[g] = sq2 > 0 ? sqx / sq2 : 0.0f;
                best[g] = d[g] * sqx;
            } else if (sq2 > 0 && sqx * sqx > best[g] * sq2) {
                d[g] = sqx / sq2;
                best[g] = d[g] * sqx;
            }
        }
    }
    for (int g = 0; g < G; ++g)
        scales[g] = live[g] ? d[g] : 0.0f;
}

namespace {

// Weights of one block of 32: importance * sqrt(sigma2 + x^2), or x^2 without importance.
void iq4Weights(const float* xb, const float* qw, float sigma2, float* weight)
{
    for (int j = 0; j < 32; ++j)
        weight[j] = qw ? qw[j] * std::sqrt(sigma2 + xb[j] * xb[j]) : xb[j] * xb[j];
}

float iq4Sigma2(const float* x, int n)
{
    float s = 0;
    for (int j = 0; j < n; ++j)
        s += x[j] * x[j];
    return s * (2.0f / static_cast<float>(n));
}

void packNibbles(const uint8_t* L, uint8_t* qs)
{
    for (int j = 0; j < 16; ++j)
        qs[j] = static_cast<uint8_t>(L[j] | (L[j + 16] << 4));
}

} // namespace

void quantizeRowIQ4_NL(const float* x, int64_t n, unsigned char* dst, const float* importance)
{
    const int64_t nb = n / kBlock;
    float weight[8 * kBlock], d[8];
    auto emit = [&](int64_t ib, float scale) {
        BlockIQ4_NL y;
        y.d = floatToHalf(scale);
        const float id = scale ? 1 / scale : 0.0f;
        uint8_t L[kBlock];
        for (int j = 0; j < kBlock; ++j)
            L[j] = static_cast<uint8_t>(nearestIq4Level(id * x[kBlock * ib + j]));
        packNibbles(L, y.qs);
        std::memcpy(dst + ib * sizeof(BlockIQ4_NL), &y, sizeof y);
    };
    // Each block is its own super-block (its own sigma2); eight at a time through the batched search.
    int64_t ib = 0;
    for (; ib + 8 <= nb; ib += 8) {
        for (int k = 0; k < 8; ++k) {
            const float* xb = x + kBlock * (ib + k);
            iq4Weights(xb, importance ? importance + kBlock * (ib + k) : nullptr, iq4Sigma2(xb, kBlock),
                       weight + kBlock * k);
        }
        iq4ScalesBatch8(x + kBlock * ib, weight, d);
        for (int k = 0; k < 8; ++k)
            emit(ib + k, d[k]);
    }
    for (; ib < nb; ++ib) {
        const float* xb = x + kBlock * ib;
        iq4Weights(xb, importance ? importance + kBlock * ib : nullptr, iq4Sigma2(xb, kBlock), weight);
        emit(ib, iq4Scale(xb, weight));
    }
}

void quantizeRowIQ4_XS(const float* x, int64_t n, unsigned char* dst, const float* importance)
{
    float weight[kSuperBlock], scales[8];
    uint8_t L[kSuperBlock];
    for (int64_t ibl = 0; ibl < n / kSuperBlock; ++ibl, x += kSuperBlock, dst += sizeof(BlockIQ4_XS)) {
        const float sigma2 = iq4Sigma2(x, kSuperBlock);
        for (int ib = 0; ib < 8; ++ib) {
            const float* qw = importance ? importance + kSuperBlock * ibl + 32 * ib : nullptr;
            iq4Weights(x + 32 * ib, qw, sigma2, weight + 32 * ib);
        }
        iq4ScalesBatch8(x, weight, scales);
        float maxScale = 0, amaxScale = 0;
        for (int ib = 0; ib < 8; ++ib) {
            if (std::fabs(scales[ib]) > amaxScale) {
                amaxScale = std::fabs(scales[ib]);
                maxScale = scales[ib];
            }
        }
        BlockIQ4_XS y;
        y.scalesH = 0;
        const float d = -maxScale / 32;
        y.d = floatToHalf(d);
        const float id = d ? 1 / d : 0.0f;
        for (int ib = 0; ib < 8; ++ib) {
            int l = std::clamp(nearestInt(id * scales[ib]), -32, 31);
            const float dl = d * static_cast<float>(l);
            const float idl = dl ? 1 / dl : 0.0f;
            for (int j = 0; j < 32; ++j)
                L[32 * ib + j] = static_cast<uint8_t>(nearestIq4Level(idl * x[32 * ib + j]));
            l += 32;
            if (ib % 2 == 0)
                y.scalesL[ib / 2] = static_cast<uint8_t>(l & 0xF);
            else
                y.scalesL[ib / 2] |= static_cast<uint8_t>((l & 0xF) << 4);
            y.scalesH = static_cast<uint16_t>(y.scalesH | ((l >> 4) << (2 * ib)));
        }
        for (int i = 0; i < 8; ++i)
            packNibbles(L + 32 * i, y.qs + 16 * i);
        std::memcpy(dst, &y, sizeof y);
    }
}

void quantizeRowMXFP4(const float* x, int64_t n, unsigned char* dst, const float*)
{
    // ggml's MXFP4 ignores importance: the shared exponent is fixed by the block maximum.
    if (quantizeRowMXFP4Vec(x, n, dst))
        return;
    // The scalar reference (ggml's quantize_row_mxfp4_ref).
    for (int64_t ib = 0; ib < n / kBlock; ++ib, x += kBlock, dst += sizeof(BlockMXFP4)) {
        float amax = 0;
        for (int j = 0; j < kBlock; ++j)
            if (amax < std::fabs(x[j]))
                amax = std::fabs(x[j]);
        // Exponent so that amax lands in the top binade of E2M1 (4..6): floor(log2(amax)) - 2, biased.
        uint8_t e = 0;
        if (amax > 0.0f) {
            const float biased = std::floor(std::log2(amax)) - 2 + 127;
            e = static_cast<uint8_t>(std::clamp(biased, 0.0f, 254.0f));
        }
        const float d = e8m0Half(e);
        BlockMXFP4 y;
        y.e = e;
        uint8_t L[kBlock];
        for (int j = 0; j < kBlock; ++j) {
            int best = 0;
            float bestErr = std::fabs(static_cast<float>(kMxfp4Values[0]) * d - x[j]);
            for (int k = 1; k < 16; ++k) {
                const float err = std::fabs(static_cast<float>(kMxfp4Values[k]) * d - x[j]);
                if (err < bestErr) {
                    best = k;
                    bestErr = err;
                }
            }
            L[j] = static_cast<uint8_t>(best);
        }
        packNibbles(L, y.qs);
        std::memcpy(dst, &y, sizeof y);
    }
}

} // namespace qs::ggml::detail
