#include "core/quant/ggml_search.h"

#include "core/quant/ggml_blocks.h"
#include "core/quant/ggml_simd.h"
#include "core/util/error.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#if defined(__clang__)
#pragma clang fp contract(off)
#endif

namespace qs::ggml::detail {

namespace {

constexpr float kGroupMaxEps = 1e-15f;
constexpr int kMaxGroup = 256; // largest group any caller passes

int clampLevel(int l, int lo, int hi)
{
    return std::max(lo, std::min(hi, l));
}

// The weights of makeQxQuants: w itself, or a function of x chosen by rmseType.
const float* qxWeights(int n, int rmseType, const float* w, const float* x, float* scratch)
{
    if (w)
        return w;
    for (int i = 0; i < n; ++i) {
        switch (rmseType) {
        case 1:
            scratch[i] = x[i] * x[i];
            break;
        case 2:
            scratch[i] = 1.0f;
            break;
        case 3:
            scratch[i] = std::fabs(x[i]);
            break;
        default:
            scratch[i] = std::sqrt(std::fabs(x[i]));
            break;
        }
    }
    return scratch;
}

} // namespace

float makeQxQuants(int n, int nmax, const float* x, int8_t* L, int rmseType, const float* w)
{
    float max = 0, amax = 0;
    for (int i = 0; i < n; ++i) {
        const float ax = std::fabs(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < kGroupMaxEps) {
        std::memset(L, 0, n);
        return 0.0f;
    }
    float iscale = -static_cast<float>(nmax) / max;
    if (rmseType == 0) {
        for (int i = 0; i < n; ++i)
            L[i] = static_cast<int8_t>(nmax + clampLevel(nearestInt(iscale * x[i]), -nmax, nmax - 1));
        return 1 / iscale;
    }
    float scratch[kMaxGroup];
    if (!w && n > kMaxGroup)
        throw Error(ErrorCode::Internal, "makeQxQuants: group too large");
    const float* weights = qxWeights(n, rmseType, w, x, scratch);
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        const int l = clampLevel(nearestInt(iscale * x[i]), -nmax, nmax - 1);
        L[i] = static_cast<int8_t>(l + nmax);
        const float wi = weights[i];
        sumlx += wi * x[i] * static_cast<float>(l);
        suml2 += wi * static_cast<float>(l) * static_cast<float>(l);
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; ++is) {
        if (is == 0)
            continue;
        iscale = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(is)) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; ++i) {
            const int l = clampLevel(nearestInt(iscale * x[i]), -nmax, nmax - 1);
            const float wi = weights[i];
            sumlx += wi * x[i] * static_cast<float>(l);
            suml2 += wi * static_cast<float>(l) * static_cast<float>(l);
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; ++i)
                L[i] = static_cast<int8_t>(nmax + clampLevel(nearestInt(iscale * x[i]), -nmax, nmax - 1));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

float makeQ3Quants(int n, int nmax, const float* x, int8_t* L)
{
    float max = 0, amax = 0;
    for (int i = 0; i < n; ++i) {
        const float ax = std::fabs(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < kGroupMaxEps) {
        std::memset(L, 0, n);
        return 0.0f;
    }
    const float iscale = -static_cast<float>(nmax) / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        const int l = clampLevel(nearestInt(iscale * x[i]), -nmax, nmax - 1);
        L[i] = static_cast<int8_t>(l);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * static_cast<float>(l);
        suml2 += w * static_cast<float>(l) * static_cast<float>(l);
    }
    for (int round = 0; round < 5; ++round) {
        int changed = 0;
        for (int i = 0; i < n; ++i) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * static_cast<float>(L[i]);
            if (slx > 0) {
                float sl2 = suml2 - w * static_cast<float>(L[i]) * static_cast<float>(L[i]);
                const int newL = clampLevel(nearestInt(x[i] * sl2 / slx), -nmax, nmax - 1);
                if (newL != L[i]) {
                    slx += w * x[i] * static_cast<float>(newL);
                    sl2 += w * static_cast<float>(newL) * static_cast<float>(newL);
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = static_cast<int8_t>(newL);
                        sumlx = slx;
                        suml2 = sl2;
                        ++changed;
                    }
                }
            }
        }
        if (!changed)
            break;
    }
    for (int i = 0; i < n; ++i)
        L[i] = static_cast<int8_t>(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

namespace {

// The common body of makeQkx2Quants / makeQkx3Quants. Qkx3 guards the level computation against a
// min that sits at or above max (v may then be inf or nan); both agree on finite in-range values.
template <bool Qkx3>
float makeQkxQuants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* negMin,
                    uint8_t* Laux, float rmin, float rdelta, int nstep, bool useMad)
{
    auto weight = [&](int i) { return weights ? weights[i] : x[i] * x[i]; };
    float min = x[0], max = x[0];
    float sumW = weight(0);
    float sumX = sumW * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < min)
            min = x[i];
        if (x[i] > max)
            max = x[i];
        const float w = weight(i);
        sumW += w;
        sumX += w * x[i];
    }
    if (min > 0)
        min = 0;
    if (Qkx3 ? max <= min : max == min) {
        std::memset(L, 0, n);
        *negMin = -min;
        return 0.0f;
    }
    float iscale = static_cast<float>(nmax) / (max - min);
    float scale = 1 / iscale;
    float bestError = 0;
    for (int i = 0; i < n; ++i) {
        L[i] = static_cast<uint8_t>(clampLevel(nearestInt(iscale * (x[i] - min)), 0, nmax));
        float diff = scale * static_cast<float>(L[i]) + min - x[i];
        diff = useMad ? std::fabs(diff) : diff * diff;
        bestError += weight(i) * diff;
    }
    if (nstep < 1) {
        *negMin = -min;
        return scale;
    }
    for (int is = 0; is <= nstep; ++is) {
        iscale = (rmin + rdelta * static_cast<float>(is) + static_cast<float>(nmax)) / (max - min);
        float sumL = 0, sumL2 = 0, sumXL = 0;
        for (int i = 0; i < n; ++i) {
            int l;
            if constexpr (Qkx3) {
                const float v = iscale * (x[i] - min);
                l = v > 0 ? nearestInt(std::min(v, static_cast<float>(nmax))) : 0;
            } else {
                l = clampLevel(nearestInt(iscale * (x[i] - min)), 0, nmax);
            }
            Laux[i] = static_cast<uint8_t>(l);
            const float w = weight(i);
            const float fl = static_cast<float>(l);
            sumL += w * fl;
            sumL2 += w * fl * fl;
            sumXL += w * fl * x[i];
        }
        const float D = sumW * sumL2 - sumL * sumL;
        if (D > 0) {
            float thisScale = (sumW * sumXL - sumX * sumL) / D;
            float thisMin = (sumL2 * sumX - sumL * sumXL) / D;
            if (thisMin > 0) {
                thisMin = 0;
                thisScale = sumXL / sumL2;
            }
            float error = 0;
            for (int i = 0; i < n; ++i) {
                float diff = thisScale * static_cast<float>(Laux[i]) + thisMin - x[i];
                diff = useMad ? std::fabs(diff) : diff * diff;
                error += weight(i) * diff;
            }
            if (error < bestError) {
                std::memcpy(L, Laux, n);
                bestError = error;
                scale = thisScale;
                min = thisMin;
            }
        }
    }
    *negMin = -min;
    return scale;
}

} // namespace

float makeQkx2Quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* negMin,
                     uint8_t* Laux, float rmin, float rdelta, int nstep, bool useMad)
{
    return makeQkxQuants<false>(n, nmax, x, weights, L, negMin, Laux, rmin, rdelta, nstep, useMad);
}

float makeQkx3Quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* negMin,
                     uint8_t* Laux, float rmin, float rdelta, int nstep, bool useMad)
{
    return makeQkxQuants<true>(n, nmax, x, weights, L, negMin, Laux, rmin, rdelta, nstep, useMad);
}

namespace {

template <int G, bool Qkx3>
void qkxBatch(int n, int nmax, const float* x, const float* w, uint8_t* L, float* scales, float* negMins,
              float rmin, float rdelta, int nstep, bool useMad)
{
    constexpr int kMaxN = 32;
    if (n > kMaxN || n < 1 || !w)
        throw Error(ErrorCode::Internal, "makeQkxQuantsBatch: bad group");
    const float fmax = static_cast<float>(nmax);
    float min[G], max[G], sumW[G], sumX[G], scale[G], best[G], iscale[G];
    bool live[G];
    for (int g = 0; g < G; ++g) {
        const float* xg = x + g * n;
        const float* wg = w + g * n;
        min[g] = max[g] = xg[0];
        sumW[g] = wg[0];
        sumX[g] = sumW[g] * xg[0];
        for (int i = 1; i < n; ++i) {
            if (xg[i] < min[g])
                min[g] = xg[i];
            if (xg[i] > max[g])
                max[g] = xg[i];
            sumW[g] += wg[i];
            sumX[g] += wg[i] * xg[i];
        }
        if (min[g] > 0)
            min[g] = 0;
        live[g] = Qkx3 ? max[g] > min[g] : max[g] != min[g];
        if (!live[g]) { // finished: outputs now, then harmless values so the shared loops stay finite
            negMins[g] = -min[g];
            scales[g] = 0.0f;
            min[g] = 0.0f;
            max[g] = 1.0f;
        }
        iscale[g] = fmax / (max[g] - min[g]);
        scale[g] = 1 / iscale[g];
        best[g] = 0;
    }
    for (int i = 0; i < n; ++i) {
        for (int g = 0; g < G; ++g) {
            const float xi = x[g * n + i];
            const int l = clampLevel(nearestInt(iscale[g] * (xi - min[g])), 0, nmax);
            L[g * n + i] = static_cast<uint8_t>(l);
            float diff = scale[g] * static_cast<float>(l) + min[g] - xi;
            diff = useMad ? std::fabs(diff) : diff * diff;
            best[g] += w[g * n + i] * diff;
        }
    }
    // The trial steps run four groups per SSE vector: lane g of every vector is group g, and each lane
    // performs exactly the scalar operations of its group in the same order.
    static_assert(G % 4 == 0);
    constexpr int V = G / 4;
    F4 xt[kMaxN][V], wt[kMaxN][V]; // transposed: xt[i][v] lane k = x of group 4v+k at i
    for (int i = 0; i < n; ++i)
        for (int v = 0; v < V; ++v)
            for (int k = 0; k < 4; ++k) {
                xt[i][v][k] = x[(4 * v + k) * n + i];
                wt[i][v][k] = w[(4 * v + k) * n + i];
            }
    const F4 fmax4 = splat(fmax);
    const I4 nmax4 = splatInt(nmax), zero4 = splatInt(0);
    I4 laux[kMaxN][V];
    for (int is = 0; nstep >= 1 && is <= nstep; ++is) {
        const float numerator = rmin + rdelta * static_cast<float>(is) + fmax;
        F4 iscale4[V], min4[V], sumL[V], sumL2[V], sumXL[V];
        for (int v = 0; v < V; ++v) {
            for (int k = 0; k < 4; ++k) {
                iscale4[v][k] = numerator / (max[4 * v + k] - min[4 * v + k]);
                min4[v][k] = min[4 * v + k];
            }
            sumL[v] = sumL2[v] = sumXL[v] = splat(0.0f);
        }
        for (int i = 0; i < n; ++i) {
            for (int v = 0; v < V; ++v) {
                const F4 xi = xt[i][v];
                const F4 t = iscale4[v] * (xi - min4[v]);
                I4 l;
                if constexpr (Qkx3) {
                    l = nearestInt4(select(fmax4 < t, fmax4, t));
                    l = select(t > splat(0.0f), l, zero4);
                } else {
                    l = nearestInt4(t);
                    l = select(l > nmax4, nmax4, l);
                    l = select(l < zero4, zero4, l);
                }
                laux[i][v] = l;
                const F4 wi = wt[i][v];
                const F4 fl = __builtin_convertvector(l, F4);
                sumL[v] += wi * fl;
                sumL2[v] += wi * fl * fl;
                sumXL[v] += wi * fl * xi;
            }
        }
        F4 thisScale4[V], thisMin4[V], error4[V];
        bool ok[G];
        for (int v = 0; v < V; ++v) {
            for (int k = 0; k < 4; ++k) {
                const int g = 4 * v + k;
                const float sl = sumL[v][k], sl2 = sumL2[v][k], sxl = sumXL[v][k];
                const float D = sumW[g] * sl2 - sl * sl;
                ok[g] = live[g] && D > 0;
                float ts = ok[g] ? (sumW[g] * sxl - sumX[g] * sl) / D : 0.0f;
                float tm = ok[g] ? (sl2 * sumX[g] - sl * sxl) / D : 0.0f;
                if (tm > 0) {
                    tm = 0;
                    ts = sxl / sl2;
                }
                thisScale4[v][k] = ts;
                thisMin4[v][k] = tm;
            }
            error4[v] = splat(0.0f);
        }
        for (int i = 0; i < n; ++i) {
            for (int v = 0; v < V; ++v) {
                F4 diff = thisScale4[v] * __builtin_convertvector(laux[i][v], F4) + thisMin4[v] - xt[i][v];
                diff = useMad ? absVec(diff) : diff * diff;
                error4[v] += wt[i][v] * diff;
            }
        }
        for (int g = 0; g < G; ++g) {
            const int v = g / 4, k = g % 4;
            if (ok[g] && error4[v][k] < best[g]) {
                for (int i = 0; i < n; ++i)
                    L[g * n + i] = static_cast<uint8_t>(laux[i][v][k]);
                best[g] = error4[v][k];
                scale[g] = thisScale4[v][k];
                min[g] = thisMin4[v][k];
            }
        }
    }
    for (int g = 0; g < G; ++g) {
        if (live[g]) {
            scales[g] = scale[g];
            negMins[g] = -min[g];
        } else {
            std::memset(L + g * n, 0, n);
        }
    }
}

} // namespace

namespace {

template <int G> void qxBatch(int n, int nmax, const float* x, const float* w, int8_t* L, float* scales)
{
    constexpr int kMaxN = 32;
    if (n > kMaxN || n < 1 || !w)
        throw Error(ErrorCode::Internal, "makeQxQuantsBatch: bad group");
    static_assert(G % 4 == 0);
    constexpr int V = G / 4;
    float max[G], scale[G], best[G];
    bool live[G];
    for (int g = 0; g < G; ++g) {
        const float* xg = x + g * n;
        float amax = 0;
        max[g] = 0;
        for (int i = 0; i < n; ++i) {
            const float ax = std::fabs(xg[i]);
            if (ax > amax) {
                amax = ax;
                max[g] = xg[i];
            }
        }
        live[g] = !(amax < kGroupMaxEps);
        if (!live[g]) {
            std::memset(L + g * n, 0, n);
            scales[g] = 0.0f;
            max[g] = 1.0f; // keeps the shared arithmetic finite
        }
    }
    F4 xt[kMaxN][V], wt[kMaxN][V];
    for (int i = 0; i < n; ++i)
        for (int v = 0; v < V; ++v)
            for (int k = 0; k < 4; ++k) {
                xt[i][v][k] = x[(4 * v + k) * n + i];
                wt[i][v][k] = w[(4 * v + k) * n + i];
            }
    const I4 hi = splatInt(nmax - 1), lo = splatInt(-nmax);
    I4 laux[kMaxN][V];
    // Trial 0 is the plain scale -nmax/max; then -(nmax + 0.1 is)/max for is = -9..9 except 0.
    for (int trial = 0; trial < 19; ++trial) {
        const int is = trial == 0 ? 0 : trial <= 9 ? trial - 10 : trial - 9;
        F4 iscale4[V], sumlx[V], suml2[V];
        for (int v = 0; v < V; ++v) {
            for (int k = 0; k < 4; ++k) {
                const float numerator = trial == 0
                                            ? -static_cast<float>(nmax)
                                            : -(static_cast<float>(nmax) + 0.1f * static_cast<float>(is));
                iscale4[v][k] = numerator / max[4 * v + k];
            }
            sumlx[v] = suml2[v] = splat(0.0f);
        }
        for (int i = 0; i < n; ++i) {
            for (int v = 0; v < V; ++v) {
                I4 l = nearestInt4(iscale4[v] * xt[i][v]);
                l = select(l > hi, hi, l);
                l = select(l < lo, lo, l);
                laux[i][v] = l;
                const F4 fl = __builtin_convertvector(l, F4);
                sumlx[v] += wt[i][v] * xt[i][v] * fl;
                suml2[v] += wt[i][v] * fl * fl;
            }
        }
        for (int g = 0; g < G; ++g) {
            const int v = g / 4, k = g % 4;
            const float slx = sumlx[v][k], sl2 = suml2[v][k];
            bool take;
            if (trial == 0) {
                scale[g] = sl2 ? slx / sl2 : 0.0f;
                best[g] = scale[g] * slx;
                take = true;
            } else {
                take = sl2 > 0 && slx * slx > best[g] * sl2;
                if (take) {
                    scale[g] = slx / sl2;
                    best[g] = scale[g] * slx;
                }
            }
            if (take && live[g])
                for (int i = 0; i < n; ++i)
                    L[g * n + i] = static_cast<int8_t>(nmax + laux[i][v][k]);
        }
    }
    for (int g = 0; g < G; ++g)
        if (live[g])
            scales[g] = scale[g];
}

} // namespace

template <int G>
void makeQxQuantsBatch(int n, int nmax, const float* x, const float* weights, int8_t* L, float* scales)
{
    qxBatch<G>(n, nmax, x, weights, L, scales);
}

template void makeQxQuantsBatch<8>(int, int, const float*, const float*, int8_t*, float*);
template void makeQxQuantsBatch<16>(int, int, const float*, const float*, int8_t*, float*);

template <int G>
void makeQkxQuantsBatch(bool qkx3, int n, int nmax, const float* x, const float* weights, uint8_t* L,
                        float* scales, float* negMins, float rmin, float rdelta, int nstep, bool useMad)
{
    if (qkx3)
        qkxBatch<G, true>(n, nmax, x, weights, L, scales, negMins, rmin, rdelta, nstep, useMad);
    else
        qkxBatch<G, false>(n, nmax, x, weights, L, scales, negMins, rmin, rdelta, nstep, useMad);
}

template void makeQkxQuantsBatch<8>(bool, int, int, const float*, const float*, uint8_t*, float*, float*,
                                    float, float, int, bool);
template void makeQkxQuantsBatch<16>(bool, int, int, const float*, const float*, uint8_t*, float*, float*,
                                     float, float, int, bool);

float makeQpQuants(int n, int nmax, const float* x, uint8_t* L, const float* weights)
{
    float max = 0;
    for (int i = 0; i < n; ++i)
        max = std::max(max, x[i]);
    if (max < kGroupMaxEps) {
        std::memset(L, 0, n);
        return 0.0f;
    }
    float iscale = static_cast<float>(nmax) / max;
    for (int i = 0; i < n; ++i)
        L[i] = static_cast<uint8_t>(nearestInt(iscale * x[i]));
    const float scale0 = 1 / iscale;
    float bestMse = 0;
    for (int i = 0; i < n; ++i) {
        const float diff = x[i] - scale0 * static_cast<float>(L[i]);
        bestMse += weights[i] * diff * diff;
    }
    for (int is = -4; is <= 4; ++is) {
        if (is == 0)
            continue;
        const float iscaleIs = (0.1f * static_cast<float>(is) + static_cast<float>(nmax)) / max;
        const float scaleIs = 1 / iscaleIs;
        float mse = 0;
        for (int i = 0; i < n; ++i) {
            const int l = std::min(nmax, nearestInt(iscaleIs * x[i]));
            const float diff = x[i] - scaleIs * static_cast<float>(l);
            mse += weights[i] * diff * diff;
        }
        if (mse < bestMse) {
            bestMse = mse;
            iscale = iscaleIs;
        }
    }
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        const int l = std::min(nmax, nearestInt(iscale * x[i]));
        L[i] = static_cast<uint8_t>(l);
        const float w = weights[i];
        sumlx += w * x[i] * static_cast<float>(l);
        suml2 += w * static_cast<float>(l) * static_cast<float>(l);
    }
    for (int round = 0; round < 5; ++round) {
        int changed = 0;
        for (int i = 0; i < n; ++i) {
            const float w = weights[i];
            float slx = sumlx - w * x[i] * static_cast<float>(L[i]);
            float sl2 = suml2 - w * static_cast<float>(L[i]) * static_cast<float>(L[i]);
            if (slx > 0 && sl2 > 0) {
                const int newL = std::min(nmax, nearestInt(x[i] * sl2 / slx));
                if (newL != L[i]) {
                    slx += w * x[i] * static_cast<float>(newL);
                    sl2 += w * static_cast<float>(newL) * static_cast<float>(newL);
                    if (slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = static_cast<uint8_t>(newL);
                        sumlx = slx;
                        suml2 = sl2;
                        ++changed;
                    }
                }
            }
        }
        if (!changed)
            break;
    }
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

} // namespace qs::ggml::detail
