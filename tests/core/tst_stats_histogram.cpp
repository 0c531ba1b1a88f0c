// qs::Histogram: the fixed key grid, exact merging, validation of stored histograms, and the binned views.
#include "core/stats/histogram.h"

#include <QtTest>
#include <bit>
#include <cmath>
#include <limits>
#include <random>

namespace {

qs::Histogram fromValues(const std::vector<float>& values, bool exact)
{
    std::vector<uint64_t> dense(qs::Histogram::kKeys, 0);
    for (float v : values)
        ++dense[qs::Histogram::keyOf(v)];
    return qs::Histogram::fromDense(dense.data(), exact);
}

} // namespace

class TestStatsHistogram : public QObject {
    Q_OBJECT

private slots:
    void keysBracketTheirValues()
    {
        std::mt19937 rng(1);
        std::uniform_int_distribution<uint32_t> bits;
        for (int i = 0; i < 200000; ++i) {
            const float v = std::bit_cast<float>(bits(rng));
            if (!std::isfinite(v))
                continue;
            const uint16_t k = qs::Histogram::keyOf(v);
            QVERIFY(qs::Histogram::finiteKey(k));
            QVERIFY(qs::Histogram::keyLow(k) <= v && v <= qs::Histogram::keyHigh(k));
            // The key value is the truncation toward zero: same sign, never larger in magnitude.
            const float t = qs::Histogram::keyValue(k);
            QVERIFY(std::signbit(t) == std::signbit(v) && std::fabs(t) <= std::fabs(v));
            if (std::fabs(v) >= std::numeric_limits<float>::min()) // normal: 7 mantissa bits kept
                QVERIFY(std::fabs(v - t) <= std::fabs(v) * 0.0079f);
            else // subnormal: the key keeps the same absolute resolution as the smallest normals
                QVERIFY(std::fabs(v - t) < std::ldexp(1.0f, -133));
        }
        QCOMPARE(qs::Histogram::keyOf(1.0f), uint16_t(0x3F80));
        QCOMPARE(qs::Histogram::keyValue(0xBFC0), -1.5f);
        QVERIFY(!qs::Histogram::finiteKey(qs::Histogram::keyOf(std::numeric_limits<float>::infinity())));
        QVERIFY(!qs::Histogram::finiteKey(qs::Histogram::keyOf(-std::numeric_limits<float>::quiet_NaN())));
    }

    void nonFiniteKeysAreDropped()
    {
        const auto h = fromValues({1.0f, std::numeric_limits<float>::infinity(), std::nanf(""), -2.0f}, true);
        QCOMPARE(h.total(), uint64_t(2));
        QCOMPARE(h.minValue(), -2.0);
        QCOMPARE(h.maxValue(), 1.0);
    }

    void mergeIsExactAndOrderFree()
    {
        std::mt19937 rng(2);
        std::student_t_distribution<float> d(2.0f);
        std::vector<float> all(30000);
        for (auto& v : all)
            v = d(rng);
        const auto a = fromValues({all.begin(), all.begin() + 10000}, false);
        const auto b = fromValues({all.begin() + 10000, all.begin() + 25000}, false);
        const auto c = fromValues({all.begin() + 25000, all.end()}, false);
        auto abc = a, cba = c;
        abc.merge(b);
        abc.merge(c);
        cba.merge(b);
        cba.merge(a);
        const auto whole = fromValues(all, false);
        QVERIFY(abc == whole);
        QVERIFY(cba == whole);
        QCOMPARE(whole.total(), uint64_t(all.size()));
        // Merging with an empty histogram changes nothing, exactness is the conjunction.
        auto e = qs::Histogram();
        e.merge(whole);
        QVERIFY(e == whole);
        auto x = fromValues({1.0f}, true);
        QVERIFY(x.exact());
        x.merge(a);
        QVERIFY(!x.exact());
    }

    void fromSparseValidates()
    {
        qs::Histogram h;
        QVERIFY(qs::Histogram::fromSparse({1, 5, 0x8001}, {3, 1, 2}, true, &h));
        QCOMPARE(h.total(), uint64_t(6));
        QVERIFY(h.exact());
        qs::Histogram untouched;
        QVERIFY(!qs::Histogram::fromSparse({5, 1}, {1, 1}, true, &untouched));     // unsorted
        QVERIFY(!qs::Histogram::fromSparse({1, 1}, {1, 1}, true, &untouched));     // duplicate
        QVERIFY(!qs::Histogram::fromSparse({0x7F80}, {1}, true, &untouched));      // +inf key
        QVERIFY(!qs::Histogram::fromSparse({0xFFC0}, {1}, true, &untouched));      // NaN key
        QVERIFY(!qs::Histogram::fromSparse({1}, {0}, true, &untouched));           // empty count
        QVERIFY(!qs::Histogram::fromSparse({1, 2}, {1}, true, &untouched));        // lengths differ
        QVERIFY(!qs::Histogram::fromSparse({1, 2}, {~0ull, 1}, true, &untouched)); // total overflows
        QVERIFY(untouched.empty());
    }

    void linearBins()
    {
        // Exact values: binned as themselves; outside values are counted apart.
        const auto h = fromValues({-1.0f, -0.5f, 0.0f, 0.25f, 0.5f, 0.75f, 1.0f, 1.0f, 3.0f, -4.0f}, true);
        const auto b = h.linear(4, -1.0, 1.0);
        QCOMPARE(b.edges, std::vector<double>({-1.0, -0.5, 0.0, 0.5, 1.0}));
        QCOMPARE(b.counts, std::vector<uint64_t>({1, 1, 2, 4})); // the last bin is closed
        QCOMPARE(b.below, uint64_t(1));
        QCOMPARE(b.above, uint64_t(1));
        QVERIFY(!b.symlog);

        // One value: a degenerate range holds everything in one bin.
        const auto one = fromValues({0.375f, 0.375f}, true).linear(5, 0.375, 0.375);
        QCOMPARE(one.counts, std::vector<uint64_t>({2, 0, 0, 0, 0}));
        QVERIFY(fromValues({1.0f}, true).linear(3, 1.0, 0.0).counts.empty()); // lo > hi
    }

    void truncatedValuesStayInTheirRange()
    {
        // 1.00001f truncates to key value 1.0, below the range [1.00001, 2]: for inexact data it belongs
        // to the first bin, not below the range; for a negative range end the mirror case.
        const float lo = 1.00001f, hi = -1.00001f;
        // The range's end moves out to the key's boundary, so the bins say where the values really are.
        const auto b = fromValues({lo, 1.75f, 2.0f}, false).linear(2, double(lo), 2.0);
        QCOMPARE(b.counts, std::vector<uint64_t>({1, 2}));
        QCOMPARE(b.below, uint64_t(0));
        QCOMPARE(b.edges.front(), 1.0);
        const auto n = fromValues({-2.0f, -1.5f, hi}, false).linear(2, -2.0, double(hi));
        QCOMPARE(n.above, uint64_t(0));
        QCOMPARE(n.edges.back(), -1.0);
        // The middle edge -1.500005 cut the key of -1.5, i.e. (-1.5078125, -1.5]: it moved to the key's
        // lower boundary, so the whole key is in the upper bin, where its key value -1.5 was.
        QCOMPARE(n.edges[1], double(qs::Histogram::keyLow(qs::Histogram::keyOf(-1.5f))));
        QCOMPARE(n.counts, std::vector<uint64_t>({1, 2}));
        // With the data's exact min and max known, the range's ends need not move.
        const auto bounded = fromValues({-2.0f, -1.5f, hi}, false).linear(2, -2.0, double(hi), {-2.0, double(hi)});
        QCOMPARE(bounded.edges.front(), -2.0);
        QCOMPARE(bounded.edges.back(), double(hi));
        QCOMPARE(bounded.counts, std::vector<uint64_t>({1, 2}));
        // Values whose whole key lies outside are still outside.
        const auto far = fromValues({0.5f, 1.5f}, false).linear(2, 1.0, 2.0);
        QCOMPARE(far.below, uint64_t(1));
    }

    void symlogBins()
    {
        std::vector<float> v;
        for (int e = -6; e <= 2; ++e) {
            v.push_back(std::ldexp(1.0f, e * 2));
            v.push_back(-std::ldexp(1.0f, e * 2));
        }
        const auto h = fromValues(v, true);
        const auto s = h.symlog(16, 0.01, -16.0, 16.0);
        QVERIFY(s.symlog);
        QCOMPARE(s.linthresh, 0.01);
        QCOMPARE(s.edges.size(), size_t(17));
        QCOMPARE(s.edges.front(), -16.0);
        QCOMPARE(s.edges.back(), 16.0);
        QCOMPARE(s.edges[8], 0.0);
        for (size_t i = 0; i < 8; ++i)
            QVERIFY(std::fabs(s.edges[i] + s.edges[16 - i]) < 1e-12); // symmetric
        // Edges are the inverse transform of a uniform grid.
        const double u = std::log1p(16.0 / 0.01) / 8;
        QVERIFY(std::fabs(s.edges[12] - 0.01 * std::expm1(4 * u)) < 1e-12);
        uint64_t total = 0;
        for (auto c : s.counts)
            total += c;
        QCOMPARE(total, uint64_t(v.size()));
        // Every bin from the bulk to the tails is occupied once the values span many decades.
        QVERIFY(std::count(s.counts.begin(), s.counts.end(), 0u) <= 6);
        // A non-positive threshold falls back to 1 instead of dividing by zero.
        QCOMPARE(h.symlog(4, 0, -1, 1).linthresh, 1.0);
    }
};

QTEST_APPLESS_MAIN(TestStatsHistogram)
#include "tst_stats_histogram.moc"
