#include "core/quant/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace qs {

namespace {

// Per-row sums in independent lanes over tiles of constant length: GCC -O2 vectorises these loops.
constexpr uint64_t kLanes = 8;

struct RowSums {
    double x2 = 0, y2 = 0, xy = 0, e2 = 0, maxAbs = 0, weighted = 0;
};

RowSums rowSums(const float* __restrict x, const float* __restrict y, uint64_t n, const float* __restrict imp)
{
    double x2[kLanes] = {}, y2[kLanes] = {}, xy[kLanes] = {}, e2[kLanes] = {}, mx[kLanes] = {},
           w[kLanes] = {};
    uint64_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
        for (uint64_t k = 0; k < kLanes; ++k) {
            const double a = x[i + k], b = y[i + k], e = b - a;
            x2[k] += a * a;
            y2[k] += b * b;
            xy[k] += a * b;
            e2[k] += e * e;
            mx[k] = std::max(mx[k], std::fabs(e));
        }
    if (imp)
        for (uint64_t j = 0; j + kLanes <= n; j += kLanes)
            for (uint64_t k = 0; k < kLanes; ++k) {
                const double e = static_cast<double>(y[j + k]) - static_cast<double>(x[j + k]);
                w[k] += static_cast<double>(imp[j + k]) * e * e;
            }
    RowSums r;
    for (uint64_t k = 0; k < kLanes; ++k) {
        r.x2 += x2[k];
        r.y2 += y2[k];
        r.xy += xy[k];
        r.e2 += e2[k];
        r.maxAbs = std::max(r.maxAbs, mx[k]);
        r.weighted += w[k];
    }
    for (; i < n; ++i) {
        const double a = x[i], b = y[i], e = b - a;
        r.x2 += a * a;
        r.y2 += b * b;
        r.xy += a * b;
        r.e2 += e * e;
        r.maxAbs = std::max(r.maxAbs, std::fabs(e));
        if (imp)
            r.weighted += static_cast<double>(imp[i]) * e * e;
    }
    return r;
}

} // namespace

void ErrorAccumulator::add(const float* x, const float* y, uint64_t rows, uint64_t cols,
                           const float* importance)
{
    double sx2 = 0, sy2 = 0, sxy = 0, se2 = 0, maxAbs = m_maxAbs, swe2 = 0;
    double impSum = 0;
    if (importance)
        for (uint64_t j = 0; j < cols; ++j)
            impSum += importance[j];
    for (uint64_t r = 0; r < rows; ++r) {
        const RowSums s = rowSums(x + r * cols, y + r * cols, cols, importance);
        sx2 += s.x2;
        sy2 += s.y2;
        sxy += s.xy;
        se2 += s.e2;
        swe2 += s.weighted;
        maxAbs = std::max(maxAbs, s.maxAbs);
    }
    m_sumX2 += sx2;
    m_sumY2 += sy2;
    m_sumXY += sxy;
    m_sumE2 += se2;
    m_maxAbs = maxAbs;
    m_count += rows * cols;
    if (importance) {
        m_weightedCount += rows * cols;
        m_sumWeightedE2 += swe2;
        m_sumImportance += impSum * static_cast<double>(rows);
    }
}

void ErrorAccumulator::merge(const ErrorAccumulator& o)
{
    m_count += o.m_count;
    m_weightedCount += o.m_weightedCount;
    m_sumX2 += o.m_sumX2;
    m_sumY2 += o.m_sumY2;
    m_sumXY += o.m_sumXY;
    m_sumE2 += o.m_sumE2;
    m_maxAbs = std::max(m_maxAbs, o.m_maxAbs);
    m_sumWeightedE2 += o.m_sumWeightedE2;
    m_sumImportance += o.m_sumImportance;
}

ErrorMetrics ErrorAccumulator::result() const
{
    constexpr double kInf = std::numeric_limits<double>::infinity();
    ErrorMetrics m;
    m.count = m_count;
    if (m_count == 0)
        return m;
    const double n = static_cast<double>(m_count);
    m.mse = m_sumE2 / n;
    m.meanSquare = m_sumX2 / n;
    m.relMse = m_sumX2 > 0 ? m_sumE2 / m_sumX2 : (m_sumE2 > 0 ? kInf : 0.0);
    m.sqnrDb = m_sumE2 > 0 ? (m_sumX2 > 0 ? 10.0 * std::log10(m_sumX2 / m_sumE2) : -kInf) : kInf;
    m.maxAbsErr = m_maxAbs;
    if (m_sumX2 > 0 && m_sumY2 > 0)
        m.cosine = m_sumXY / std::sqrt(m_sumX2 * m_sumY2);
    else
        m.cosine = (m_sumX2 == 0 && m_sumY2 == 0) ? 1.0 : 0.0;
    if (m_weightedCount == m_count && m_sumImportance > 0)
        m.weightedMse = m_sumWeightedE2 / m_sumImportance;
    return m;
}

ErrorMetrics computeErrorMetrics(const float* reference, const float* approx, uint64_t rows, uint64_t cols,
                                 const float* importance)
{
    ErrorAccumulator acc;
    acc.add(reference, approx, rows, cols, importance);
    return acc.result();
}

} // namespace qs
