#include "core/stats/histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>

namespace qs {

uint16_t Histogram::keyOf(float value)
{
    return static_cast<uint16_t>(std::bit_cast<uint32_t>(value) >> 16);
}

float Histogram::keyValue(uint16_t key)
{
    return std::bit_cast<float>(static_cast<uint32_t>(key) << 16);
}

float Histogram::keyLow(uint16_t key)
{
    return (key & 0x8000) ? std::bit_cast<float>(static_cast<uint32_t>(key) << 16 | 0xFFFF) : keyValue(key);
}

float Histogram::keyHigh(uint16_t key)
{
    return (key & 0x8000) ? keyValue(key) : std::bit_cast<float>(static_cast<uint32_t>(key) << 16 | 0xFFFF);
}

Histogram Histogram::fromDense(const uint64_t* counts, bool exact)
{
    Histogram h;
    h.m_exact = exact;
    for (size_t k = 0; k < kKeys; ++k) {
        if (counts[k] && finiteKey(static_cast<uint16_t>(k))) {
            h.m_keys.push_back(static_cast<uint16_t>(k));
            h.m_counts.push_back(counts[k]);
        }
    }
    return h;
}

bool Histogram::fromSparse(std::vector<uint16_t> keys, std::vector<uint64_t> counts, bool exact,
                           Histogram* out)
{
    if (keys.size() != counts.size())
        return false;
    uint64_t total = 0;
    for (size_t i = 0; i < keys.size(); ++i) {
        if ((i > 0 && keys[i] <= keys[i - 1]) || !finiteKey(keys[i]) || counts[i] == 0)
            return false;
        if (counts[i] > std::numeric_limits<uint64_t>::max() - total)
            return false;
        total += counts[i];
    }
    out->m_keys = std::move(keys);
    out->m_counts = std::move(counts);
    out->m_exact = exact;
    return true;
}

void Histogram::merge(const Histogram& other)
{
    if (other.empty())
        return;
    if (empty()) {
        *this = other;
        return;
    }
    std::vector<uint16_t> keys;
    std::vector<uint64_t> counts;
    keys.reserve(m_keys.size() + other.m_keys.size());
    counts.reserve(keys.capacity());
    size_t i = 0, j = 0;
    while (i < m_keys.size() || j < other.m_keys.size()) {
        if (j == other.m_keys.size() || (i < m_keys.size() && m_keys[i] < other.m_keys[j])) {
            keys.push_back(m_keys[i]);
            counts.push_back(m_counts[i++]);
        } else if (i == m_keys.size() || other.m_keys[j] < m_keys[i]) {
            keys.push_back(other.m_keys[j]);
            counts.push_back(other.m_counts[j++]);
        } else {
            keys.push_back(m_keys[i]);
            counts.push_back(m_counts[i++] + other.m_counts[j++]);
        }
    }
    m_keys = std::move(keys);
    m_counts = std::move(counts);
    m_exact = m_exact && other.m_exact;
}

uint64_t Histogram::total() const
{
    uint64_t n = 0;
    for (auto c : m_counts)
        n += c;
    return n;
}

double Histogram::minValue() const
{
    double m = std::numeric_limits<double>::quiet_NaN();
    for (auto k : m_keys) {
        const double v = keyValue(k);
        if (!(v >= m))
            m = v;
    }
    return m;
}

double Histogram::maxValue() const
{
    double m = std::numeric_limits<double>::quiet_NaN();
    for (auto k : m_keys) {
        const double v = keyValue(k);
        if (!(v <= m))
            m = v;
    }
    return m;
}

template <typename Transform>
BinnedHistogram Histogram::bin(size_t bins, double lo, double hi, Transform t) const
{
    BinnedHistogram out;
    bins = std::max<size_t>(bins, 1);
    if (!(lo <= hi)) // also rejects NaN
        return out;
    const double tlo = t.forward(lo), thi = t.forward(hi);
    const double width = (thi - tlo) / static_cast<double>(bins);
    out.counts.assign(bins, 0);
    out.edges.resize(bins + 1);
    for (size_t i = 0; i <= bins; ++i)
        out.edges[i] = i == 0 ? lo : i == bins ? hi : t.inverse(tlo + width * static_cast<double>(i));
    for (size_t i = 0; i < m_keys.size(); ++i) {
        const uint16_t key = m_keys[i];
        const double rep = keyValue(key);
        size_t index;
        if (rep < lo) {
            // A truncated value can fall below the range its real values are in; keep it in the edge bin.
            if (m_exact || keyHigh(key) < lo) {
                out.below += m_counts[i];
                continue;
            }
            index = 0;
        } else if (rep > hi) {
            if (m_exact || keyLow(key) > hi) {
                out.above += m_counts[i];
                continue;
            }
            index = bins - 1;
        } else if (width > 0) {
            const double f = std::floor((t.forward(rep) - tlo) / width);
            index = f <= 0 ? 0 : std::min(static_cast<size_t>(f), bins - 1);
        } else {
            index = 0;
        }
        out.counts[index] += m_counts[i];
    }
    return out;
}

namespace {

struct LinearTransform {
    double forward(double x) const { return x; }
    double inverse(double u) const { return u; }
};

struct SymlogTransform {
    double c;
    double forward(double x) const { return std::copysign(std::log1p(std::fabs(x) / c), x); }
    double inverse(double u) const { return std::copysign(c * std::expm1(std::fabs(u)), u); }
};

} // namespace

BinnedHistogram Histogram::linear(size_t bins, double lo, double hi) const
{
    return bin(bins, lo, hi, LinearTransform{});
}

BinnedHistogram Histogram::symlog(size_t bins, double linthresh, double lo, double hi) const
{
    if (!(linthresh > 0) || !std::isfinite(linthresh))
        linthresh = 1;
    BinnedHistogram out = bin(bins, lo, hi, SymlogTransform{linthresh});
    out.symlog = true;
    out.linthresh = linthresh;
    return out;
}

} // namespace qs
