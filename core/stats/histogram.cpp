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

namespace {

// Keys in value order: ordinal 0 is the most negative key, the two zero keys (-0 and +0) are neighbours.
uint32_t ordinalOf(uint16_t key)
{
    return (key & 0x8000) ? 0x7FFFu - (key & 0x7FFFu) : 0x8000u + key;
}

uint16_t keyAt(uint32_t ordinal)
{
    return ordinal < 0x8000u ? static_cast<uint16_t>(0x8000u | (0x7FFFu - ordinal))
                             : static_cast<uint16_t>(ordinal - 0x8000u);
}

// Value intervals of cells: a cell is one key, except that the keys of -0 and +0 form one cell (a double
// edge cannot separate -0 from +0, which compare equal).
struct Cell {
    double low, high; // smallest and largest float of the cell
    uint32_t first, last; // ordinal range
};

Cell cellOf(uint32_t ordinal)
{
    if (ordinal == 0x7FFFu || ordinal == 0x8000u)
        return {Histogram::keyLow(0x8000), Histogram::keyHigh(0x0000), 0x7FFFu, 0x8000u};
    const uint16_t key = keyAt(ordinal);
    return {Histogram::keyLow(key), Histogram::keyHigh(key), ordinal, ordinal};
}

} // namespace

template <typename Transform>
BinnedHistogram Histogram::bin(size_t bins, double lo, double hi, Bounds data, Transform t) const
{
    BinnedHistogram out;
    bins = std::max<size_t>(bins, 1);
    if (!(lo <= hi)) // also rejects NaN
        return out;
    const double tlo = t.forward(lo), thi = t.forward(hi);
    const double width = (thi - tlo) / static_cast<double>(bins);
    std::vector<double> edges(bins + 1);
    for (size_t i = 0; i <= bins; ++i)
        edges[i] = i == 0 ? lo : i == bins ? hi : t.inverse(tlo + width * static_cast<double>(i));

    if (lo == hi) { // one value: everything equal to it in the first bin
        out.edges = std::move(edges);
        out.counts.assign(bins, 0);
        for (size_t i = 0; i < m_keys.size(); ++i) {
            const double a = m_exact ? keyValue(m_keys[i]) : keyLow(m_keys[i]);
            const double b = m_exact ? a : keyHigh(m_keys[i]);
            (b < lo ? out.below : a > lo ? out.above : out.counts[0]) += m_counts[i];
        }
        return out;
    }
    // A cell's interval, cut to the data's bounds where they are known.
    const double dmin = std::isnan(data.min) ? -std::numeric_limits<double>::infinity() : data.min;
    const double dmax = std::isnan(data.max) ? std::numeric_limits<double>::infinity() : data.max;
    struct Span {
        double low, high, up, rep; // values in [low, high]; up: the first float above high; rep: key value
    };
    auto spanOf = [&](const Cell& c) {
        Span sp;
        sp.low = std::max(c.low, dmin);
        sp.high = std::min(c.high, dmax);
        sp.up = sp.high < c.high ? double(std::nextafter(static_cast<float>(sp.high), HUGE_VALF))
                                 : (c.last < 0xFF7Fu ? cellOf(c.last + 1).low : c.high);
        const double key = c.first == c.last ? keyValue(keyAt(c.first)) : 0.0;
        sp.rep = std::clamp(key, sp.low, std::max(sp.low, sp.high));
        return sp;
    };
    if (!m_exact) {
        // A key of F32 / F16 data holds every value within its interval, not one value: an edge cutting
        // through an occupied key could not be counted exactly. Such an edge moves to the boundary of the
        // key that leaves the key's value on the side it was (at most one key, 2^-7 of its value); the
        // range ends move outward so that every value in [lo, hi] stays inside. Every key then lies wholly
        // inside one bin or outside the range.
        auto occupied = [this](const Cell& c) {
            for (uint32_t o = c.first; o <= c.last; ++o)
                if (std::binary_search(m_keys.begin(), m_keys.end(), keyAt(o)))
                    return true;
            return false;
        };
        auto cellAround = [](double x) {
            const float f = static_cast<float>(x);
            uint32_t o = ordinalOf(keyOf(std::isfinite(f) ? f : std::copysign(std::numeric_limits<float>::max(), f)));
            // static_cast may round across a key boundary: step to the cell that really holds x.
            Cell c = cellOf(o);
            if (x < c.low && c.first > 0x80u)
                c = cellOf(c.first - 1);
            else if (x > c.high && c.last < 0xFF7Fu)
                c = cellOf(c.last + 1);
            return c;
        };
        for (size_t i = 0; i <= bins; ++i) {
            const double x = edges[i];
            const Cell c = cellAround(x);
            const Span sp = spanOf(c);
            if (!(sp.low <= sp.high) || !occupied(c))
                continue;
            if (i == 0) {
                if (sp.low < x && x <= sp.high)
                    edges[i] = sp.low;
            } else if (i == bins) {
                if (sp.low <= x && x < sp.high)
                    edges[i] = sp.high; // the last bin is closed
            } else if (sp.low < x && x <= sp.high) {
                edges[i] = sp.rep >= x ? sp.low : sp.up;
            }
        }
        // Moving never reorders edges but may merge neighbours: drop the empty bins that leaves, and keep
        // interior edges inside the range's ends.
        for (size_t i = 1; i + 1 < edges.size(); ++i)
            edges[i] = std::clamp(edges[i], edges.front(), edges.back());
        edges.erase(std::unique(edges.begin(), edges.end()), edges.end());
        if (edges.size() < 2)
            edges.push_back(edges.front());
    }

    out.edges = std::move(edges);
    const size_t n = out.edges.size() - 1;
    out.counts.assign(n, 0);
    const double first = out.edges.front(), last = out.edges.back();
    for (size_t i = 0; i < m_keys.size(); ++i) {
        // For exact data the key value is the value; for inexact data the whole key (cut to the data's
        // bounds) lies in one bin or outside, so any of its members stands for all of them.
        const uint16_t key = m_keys[i];
        const double rep = m_exact ? keyValue(key) : spanOf(cellOf(ordinalOf(key))).rep;
        if (rep < first) {
            out.below += m_counts[i];
        } else if (rep > last) {
            out.above += m_counts[i];
        } else {
            // [edges[b], edges[b + 1]), the last bin closed.
            const auto it = std::upper_bound(out.edges.begin(), out.edges.end(), rep);
            const size_t b = std::min(static_cast<size_t>(it - out.edges.begin()) - 1, n - 1);
            out.counts[b] += m_counts[i];
        }
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

BinnedHistogram Histogram::linear(size_t bins, double lo, double hi, Bounds data) const
{
    return bin(bins, lo, hi, data, LinearTransform{});
}

BinnedHistogram Histogram::symlog(size_t bins, double linthresh, double lo, double hi, Bounds data) const
{
    if (!(linthresh > 0) || !std::isfinite(linthresh))
        linthresh = 1;
    BinnedHistogram out = bin(bins, lo, hi, data, SymlogTransform{linthresh});
    out.symlog = true;
    out.linthresh = linthresh;
    return out;
}

} // namespace qs
