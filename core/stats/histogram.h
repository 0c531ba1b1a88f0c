#pragma once
// The value distribution of a tensor (or a group of tensors) on one fixed, fine grid, from which every
// plotted histogram is derived. Because the grid never depends on the data, histograms of different
// tensors merge by adding counts — exactly, in any order — and any range or bin count can be drawn later
// without touching the weights again (the statistics cache stores this form).
//
// The grid: a value's key is its top 16 bits, i.e. sign, exponent and 7 mantissa bits — the value
// truncated toward zero to bfloat16. BF16, FP8 and 8-bit integer data fall on keys exactly; for F32 / F16
// data a key holds the values within 2^-7 relative of its key value. Only finite values are counted.
//
// Binned histograms are exact for every dtype: each value is counted in the bin [edges[i], edges[i + 1])
// that holds it. For exact sources (BF16, FP8, 8-bit) the edges are the requested ones. For F32 / F16
// sources an edge that would cut through an occupied key moves to that key's boundary (by at most one key:
// 2^-7 of the edge's value) so that the whole key lies on the side of its key value — the side the old
// truncating re-binning put it on — and every value in it, whatever it is, is counted where it lies; the
// range's ends move outward. Keys are first cut to the data's known min and max (Bounds). Edges that meet merge (bins narrower than a key), so a binned histogram
// may have fewer, slightly uneven bins than asked for: plots draw count per bin width.

#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

namespace qs {

// A plotted histogram: counts[i] values lie in [edges[i], edges[i + 1]) (the last bin is closed), exactly.
struct BinnedHistogram {
    std::vector<double> edges; // counts.size() + 1 increasing edges, in value space
    std::vector<uint64_t> counts;
    uint64_t below = 0, above = 0; // values outside [edges.front(), edges.back()]
    bool symlog = false;           // bins are uniform in sign(x) * log1p(|x| / linthresh)
    double linthresh = 0;
};

// Where the counted values are known to lie (a tensor's exact min and max), so that keys are cut to it:
// an edge at the data's min or max then never needs to move. NaN: unknown.
struct HistogramBounds {
    double min = std::numeric_limits<double>::quiet_NaN();
    double max = std::numeric_limits<double>::quiet_NaN();
};

class Histogram {
public:
    static constexpr size_t kKeys = 65536;

    static uint16_t keyOf(float value);
    // The value with the key's bits and zero below them: the key's representative.
    static float keyValue(uint16_t key);
    static bool finiteKey(uint16_t key) { return (key & 0x7F80) != 0x7F80; }
    // Smallest and largest float that map to the key (the key's whole interval).
    static float keyLow(uint16_t key);
    static float keyHigh(uint16_t key);

    Histogram() = default;
    // From a dense table of kKeys counts indexed by key; non-finite keys are dropped.
    // `exact`: every counted value equals its key value (BF16 / FP8 / 8-bit sources).
    static Histogram fromDense(const uint64_t* counts, bool exact);
    // From sorted, unique, finite keys with non-zero counts; returns false (leaving *out alone) otherwise.
    static bool fromSparse(std::vector<uint16_t> keys, std::vector<uint64_t> counts, bool exact,
                           Histogram* out);

    // Adds other's counts. Exact: merging parts gives bit-identical counts to the histogram of the whole.
    void merge(const Histogram& other);

    bool empty() const { return m_keys.empty(); }
    bool exact() const { return m_exact; }
    uint64_t total() const;
    // Sorted by key (not by value); parallel arrays.
    const std::vector<uint16_t>& keys() const { return m_keys; }
    const std::vector<uint64_t>& counts() const { return m_counts; }
    // Smallest / largest key value present (NaN when empty).
    double minValue() const;
    double maxValue() const;

    using Bounds = HistogramBounds;

    // `bins` equal bins over [lo, hi] (lo < hi; lo == hi gives one bin holding everything equal).
    BinnedHistogram linear(size_t bins, double lo, double hi, Bounds data = {}) const;
    // `bins` bins uniform in sign(x) * log1p(|x| / linthresh) over [lo, hi]: linear within ±linthresh,
    // logarithmic beyond, so both the bulk and far tails get bins. linthresh > 0.
    BinnedHistogram symlog(size_t bins, double linthresh, double lo, double hi, Bounds data = {}) const;

    bool operator==(const Histogram& other) const = default;

private:
    template <typename Transform>
    BinnedHistogram bin(size_t bins, double lo, double hi, Bounds data, Transform t) const;

    std::vector<uint16_t> m_keys;
    std::vector<uint64_t> m_counts;
    bool m_exact = true;
};

} // namespace qs
