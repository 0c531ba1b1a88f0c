// Binned histograms are exact for every dtype: F32, F16 and BF16 tensors with values placed exactly on
// and around bin edges, analysed by the statistics engine, binned linearly and symmetric-logarithmically
// with several bin counts, and compared with a straightforward count of the decoded values over the
// returned edges (decoded here by hand, not by the engine).
#include "core/model/dtype.h"
#include "core/stats/stats.h"
#include "stats_reference.h"

#include <QtTest>
#include <bit>
#include <cmath>
#include <random>

using namespace qstest;

namespace {

float halfBitsToFloat(uint16_t h)
{
    const int e = (h >> 10) & 31, m = h & 1023;
    float v = e == 0    ? std::ldexp(float(m), -24)
              : e == 31 ? (m ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity())
                        : std::ldexp(float(m | 1024), e - 25);
    return (h & 0x8000) ? -v : v;
}

// Values on, just beside and around the edges of several grids over [-1, 1], a Gaussian bulk, zeros of
// both signs and subnormals.
std::vector<float> awkwardValues()
{
    std::vector<double> edges;
    for (int bins : {7, 10, 16, 100})
        for (int i = 0; i <= bins; ++i)
            edges.push_back(-1.0 + 2.0 * i / bins);
    const double c = 0.05, u = std::log1p(1.0 / c);
    for (int i = 0; i <= 64; ++i) {
        const double t = -u + 2 * u * i / 64;
        edges.push_back(std::copysign(c * std::expm1(std::fabs(t)), t));
    }
    std::vector<float> v;
    for (double e : edges) {
        const float f = float(e);
        v.push_back(f);
        float up = f, down = f;
        for (int k = 0; k < 3; ++k) {
            up = std::nextafter(up, 2.0f);
            down = std::nextafter(down, -2.0f);
            v.push_back(up);
            v.push_back(down);
        }
        for (double r : {1.0 / 512, 1.0 / 256, 1.0 / 200, 1.0 / 128})
            for (double s : {-1.0, 1.0})
                v.push_back(float(e * (1 + s * r)));
        const uint16_t key = qs::Histogram::keyOf(f);
        v.push_back(qs::Histogram::keyLow(key));
        v.push_back(qs::Histogram::keyHigh(key));
    }
    std::mt19937 rng(15);
    std::normal_distribution<float> d(0.0f, 0.3f);
    for (int i = 0; i < 20000; ++i)
        v.push_back(d(rng));
    for (float x : {0.0f, -0.0f, 1e-40f, -1e-40f, 1e-30f, -1e-30f, 1.0f, -1.0f})
        v.push_back(x);
    for (float& x : v)
        x = std::clamp(x, -1.0f, 1.0f);
    return v;
}

// The tensor's bytes in `dtype` and its values decoded independently of the engine.
std::vector<char> encode(const std::vector<float>& v, qs::DType dtype, std::vector<float>* decoded)
{
    decoded->clear();
    if (dtype == qs::DType::F32) {
        *decoded = v;
        return f32Bytes(v);
    }
    std::vector<char> bytes(v.size() * 2);
    for (size_t i = 0; i < v.size(); ++i) {
        const uint16_t h = dtype == qs::DType::F16 ? qs::floatToHalf(v[i]) : qs::floatToBf16(v[i]);
        std::memcpy(bytes.data() + 2 * i, &h, 2);
        decoded->push_back(dtype == qs::DType::F16 ? halfBitsToFloat(h)
                                                   : std::bit_cast<float>(uint32_t(h) << 16));
    }
    return bytes;
}

uint64_t countIf(const std::vector<float>& x, auto pred)
{
    return uint64_t(std::count_if(x.begin(), x.end(), [&](float v) { return std::isfinite(v) && pred(v); }));
}

// Each symlog edge within half a key of the uniform grid in sign(x) * log1p(|x| / c).
bool symlogEdgesNear(const std::vector<double>& edges, size_t bins, double c, double lo, double hi)
{
    auto fwd = [c](double x) { return std::copysign(std::log1p(std::fabs(x) / c), x); };
    const double tlo = fwd(lo), w = (fwd(hi) - tlo) / double(bins);
    for (size_t i = 0; i < edges.size(); ++i) {
        if (i > 0 && !(edges[i] > edges[i - 1]))
            return false;
        const double k = std::round((fwd(edges[i]) - tlo) / w);
        const double t = tlo + k * w, ideal = std::copysign(c * std::expm1(std::fabs(t)), t);
        if (std::fabs(edges[i] - ideal) > std::ldexp(std::fabs(edges[i]), -7) + std::ldexp(1.0, -130))
            return false;
    }
    return true;
}

} // namespace

class TestHistogramExact : public QObject {
    Q_OBJECT

private slots:
    void countsEveryValueInItsBin_data()
    {
        QTest::addColumn<int>("dtype");
        QTest::newRow("F32") << int(qs::DType::F32);
        QTest::newRow("F16") << int(qs::DType::F16);
        QTest::newRow("BF16") << int(qs::DType::BF16);
    }

    void countsEveryValueInItsBin()
    {
        QFETCH(int, dtype);
        const auto type = qs::DType(dtype);
        std::vector<float> x;
        const auto bytes = encode(awkwardValues(), type, &x);
        TestModel m({{"w", type, {uint64_t(x.size())}, bytes}});
        qs::StatsOptions o;
        o.useCache = false;
        const auto s = qs::computeTensorStats(m.model(), m.model().tensors()[0], o);
        QCOMPARE(s.finite, uint64_t(x.size()));
        QCOMPARE(s.histogram.exact(), type == qs::DType::BF16);

        bool anyEdgeMoved = false;
        for (size_t bins : {7, 10, 16, 100, 128, 2048}) {
            for (auto [lo, hi] : {std::pair{-1.0, 1.0}, std::pair{-0.3, 0.7}, std::pair{s.min, s.max}}) {
                const auto h = s.histogram.linear(bins, lo, hi);
                QVERIFY(edgesNearUniform(h.edges, bins, lo, hi));
                QCOMPARE(h.counts, referenceBins(x, h.edges));
                QCOMPARE(h.below, countIf(x, [&](float v) { return v < h.edges.front(); }));
                QCOMPARE(h.above, countIf(x, [&](float v) { return v > h.edges.back(); }));
                // The first and last edge never cut into the requested range.
                QVERIFY(h.edges.front() <= lo && h.edges.back() >= hi);
                if (bins <= 128) // wider bins than keys: all bins are kept
                    QCOMPARE(h.counts.size(), bins);
                anyEdgeMoved = anyEdgeMoved || h.counts.size() != bins ||
                               h.edges[1] != lo + (hi - lo) / double(bins);
            }
            for (double c : {0.05, 0.003}) {
                const auto h = s.histogram.symlog(bins, c, -1.0, 1.0);
                QVERIFY(symlogEdgesNear(h.edges, bins, c, -1.0, 1.0));
                QCOMPARE(h.counts, referenceBins(x, h.edges));
                QCOMPARE(h.below + h.above, uint64_t(0));
            }
        }
        // BF16 values are their keys: the requested edges stay. F32 / F16 keys hold several values, and
        // these values sit on the edges, so edges had to move off keys.
        QCOMPARE(anyEdgeMoved, type != qs::DType::BF16);

        // The engine's own entry points (the CLI's and the view's) give the same exact counts; knowing the
        // tensor's exact min and max, they keep the range's ends where they are.
        const auto lin = s.linearHistogram(64);
        QCOMPARE(lin.counts, referenceBins(x, lin.edges));
        QVERIFY(edgesNearUniform(lin.edges, 64, s.min, s.max));
        QCOMPARE(lin.edges.front(), s.min);
        QCOMPARE(lin.edges.back(), s.max);
        QCOMPARE(lin.below + lin.above, uint64_t(0));
        const auto zoom = s.histogram.linear(100, -0.3, 0.7, {s.min, s.max});
        QCOMPARE(zoom.counts, referenceBins(x, zoom.edges));
        QCOMPARE(zoom.below, countIf(x, [&](float v) { return v < zoom.edges.front(); }));
        QCOMPARE(zoom.above, countIf(x, [&](float v) { return v > zoom.edges.back(); }));
        const auto sym = s.symlogHistogram(64);
        QCOMPARE(sym.counts, referenceBins(x, sym.edges));
    }

    void negativeZeroAndSubnormalsShareTheZeroBin()
    {
        // -0 and +0 compare equal, so no edge can separate their keys: an edge at 0 moves off them.
        std::vector<float> x = {-1.0f, -0.0f, -1e-42f, 0.0f, 1e-42f, 1.0f};
        TestModel m({{"w", qs::DType::F32, {uint64_t(x.size())}, f32Bytes(x)}});
        qs::StatsOptions o;
        o.useCache = false;
        const auto s = qs::computeTensorStats(m.model(), m.model().tensors()[0], o);
        const auto h = s.histogram.linear(2, -1.0, 1.0);
        QCOMPARE(h.counts, referenceBins(x, h.edges));
        QVERIFY(h.edges[1] != 0.0);
        QCOMPARE(h.counts[0] + h.counts[1], uint64_t(6));
    }
};

QTEST_APPLESS_MAIN(TestHistogramExact)
#include "tst_histogram_exact.moc"
