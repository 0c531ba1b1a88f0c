#include "core/quant/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace qs {

void ErrorAccumulator::add(const float* x, const float* y, uint64_t rows, uint64_t cols, const float* importance)
{
    double sx2 = 0, sy2 = 0, sxy = 0, se2 = 0, maxAbs = m_maxAbs, swe2 = 0;
    double impSum = 0;
    if (importance)
        for (uint64_t j = 0; j < cols; ++j)
            impSum += importance[j];
    for (uint64_t r = 0; r < rows; ++r) {
        const float* xr = x + r * cols;
        const float* yr = y + r * cols;
        double rx2 = 0, ry2 = 0, rxy = 0, re2 = 0, rmax = 0;
        for (uint64_t j = 0; j < cols; ++j) {
            const double a = xr[j], b = yr[j], e = b - a;
            rx2 += a * a;
            ry2 += b * b;
            rxy += a * b;
            re2 += e * e;
            rmax = std::max(rmax, std::fabs(e));
        }
        if (importance) {
            double rw = 0;
            for (uint64_t j = 0; j < cols; ++j) {
                const double e = static_cast<double>(yr[j]) - static_cast<double>(xr[j]);
                rw += static_cast<double>(importance[j]) * e * e;
            }
            swe2 += rw;
        }
        sx2 += rx2;
        sy2 += ry2;
        sxy += rxy;
        se2 += re2;
        maxAbs = std::max(maxAbs, rmax);
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
