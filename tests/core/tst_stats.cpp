// Statistics engine against independent double-precision two-pass references, on synthetic tensors with
// the awkward cases (NaN / Inf / zeros, constants, one element, a huge offset) and on real weights.
#include "core/model/model.h"
#include "core/stats/kernels.h"
#include "core/stats/stats.h"
#include "core/util/error.h"
#include "core/jobs/jobs.h"
#include "core/model/mappedfile.h"
#include "core/util/job.h"
#include "stats_reference.h"
#include "widgets/safetensors_writer.h"

#include <QtTest>
#include <atomic>
#include <fstream>
#include <mutex>
#include <random>
#include <optional>
#include <vector>

using namespace qstest;

namespace {

std::vector<float> gaussian(size_t n, double mean, double sd, unsigned seed)
{
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> d(mean, sd);
    std::vector<float> v(n);
    for (auto& x : v)
        x = static_cast<float>(d(rng));
    return v;
}

bool close(double a, double b, double rel, double abs = 0)
{
    if (std::isnan(a) || std::isnan(b))
        return std::isnan(a) && std::isnan(b);
    return std::fabs(a - b) <= std::max(abs, rel * std::max(std::fabs(a), std::fabs(b)));
}

#define QVERIFY_CLOSE(a, b, rel)                                                                             \
    QVERIFY2(close((a), (b), (rel)), qPrintable(QStringLiteral("%1 = %2, expected %3 (rel %4)")              \
                                                    .arg(QStringLiteral(#a))                                 \
                                                    .arg(double(a), 0, 'g', 17)                              \
                                                    .arg(double(b), 0, 'g', 17)                              \
                                                    .arg(double(rel))))

// Checks every statistic of `s` against the reference computed from the decoded values.
void checkAgainstReference(const qs::Model& model, const qs::TensorInfo& t, const qs::TensorStats& s,
                           double rel = 1e-12)
{
    const std::vector<float> x = decodeAll(model, t);
    // Output channels: the last axis for channels-last sources (Keras kernels [..., in, out], Paddle Linear
    // "*.w_0" [in, out]); else rows, or the first axis of a 4-D+ kernel. The reference regroups a
    // channels-last tensor so that each channel's values are contiguous.
    const bool last = t.shape.size() >= 2 && (model.format() == qs::ModelFormat::Hdf5 ||
                                              model.format() == qs::ModelFormat::Keras ||
                                              (t.shape.size() == 2 && t.name.ends_with(".w_0")));
    std::vector<float> grouped;
    if (last) {
        const size_t C = size_t(t.shape.back()), L = x.size() / C;
        grouped.resize(x.size());
        for (size_t k = 0; k < L; ++k)
            for (size_t c = 0; c < C; ++c)
                grouped[c * L + k] = x[k * C + c];
        QCOMPARE(s.channelLength, uint64_t(L));
    } else if (!x.empty()) {
        QCOMPARE(s.channelLength, t.shape.size() >= 4 ? uint64_t(x.size() / t.shape[0]) : t.columns());
    }
    const Reference r = reference(x, last ? 0 : s.channelLength);
    const Reference channelsRef = last ? reference(grouped, s.channelLength) : r;
    QCOMPARE(s.count, r.count);
    QCOMPARE(s.finite, r.finite);
    QCOMPARE(s.zeros, r.zeros);
    QCOMPARE(s.nan, r.nan);
    QCOMPARE(s.inf, r.inf);
    QCOMPARE(s.min, r.min);
    QCOMPARE(s.max, r.max);
    QCOMPARE(s.absmax, r.absmax);
    QVERIFY_CLOSE(s.mean, r.mean, rel);
    QVERIFY_CLOSE(s.std, r.std, rel);
    if (r.std > 0)
        QVERIFY_CLOSE(s.kurtosis, r.kurtosis, rel * 100);
    // σ-counts: exact by the documented definition, with the engine's own mean and std...
    QCOMPARE(s.beyond3Sigma, beyond(x, s.mean, s.std, 3));
    QCOMPARE(s.beyond6Sigma, beyond(x, s.mean, s.std, 6));
    // ...and with the reference's (equal unless a value sits within rounding of a bound).
    QCOMPARE(s.beyond3Sigma, beyond(x, r.mean, r.std, 3));
    QCOMPARE(s.beyond6Sigma, beyond(x, r.mean, r.std, 6));
    QCOMPARE(s.histogram.total(), s.finite);
    QCOMPARE(s.channelAbsmax.size(), channelsRef.channelAbsmax.size());
    for (size_t c = 0; c < channelsRef.channelAbsmax.size(); ++c) {
        QCOMPARE(double(s.channelAbsmax[c]), channelsRef.channelAbsmax[c]);
        // Stored as float; a constant channel's reference std is rounding noise of its two passes.
        QVERIFY2(std::fabs(s.channelStd[c] - channelsRef.channelStd[c]) <=
                     1e-6 * channelsRef.channelStd[c] + 1e-9 * channelsRef.channelAbsmax[c] +
                         2 * double(std::numeric_limits<float>::denorm_min()),
                 qPrintable(QStringLiteral("channel %1: std %2, expected %3")
                                .arg(c)
                                .arg(double(s.channelStd[c]), 0, 'g', 10)
                                .arg(channelsRef.channelStd[c], 0, 'g', 10)));
    }
    if (s.finite) {
        const auto bins = s.linearHistogram(64);
        QCOMPARE(bins.counts, referenceBins(x, bins.edges));
        QVERIFY(edgesNearUniform(bins.edges, 64, s.min, s.max));
        QCOMPARE(bins.below + bins.above, uint64_t(0));
    }
}

// Two F32 tensors of 64 Ki values each in one file under dir (kept by the caller).
std::shared_ptr<qs::Model> makeTwoTensorModel(const QTemporaryDir& dir)
{
    const std::string path = dir.filePath(QStringLiteral("two.bin")).toStdString();
    const uint64_t values = 65536;
    {
        std::mt19937 rng(7);
        std::normal_distribution<float> normal;
        std::vector<float> data(2 * values);
        for (auto& v : data)
            v = normal(rng);
        std::ofstream out(path, std::ios::binary);
        out.write(reinterpret_cast<const char*>(data.data()), std::streamsize(data.size() * sizeof(float)));
    }
    auto model = std::make_shared<qs::Model>(qs::ModelFormat::Safetensors, path);
    const uint32_t file = model->addFile(qs::MappedFile::open(path));
    for (int i = 0; i < 2; ++i) {
        qs::TensorInfo t;
        t.name = "t" + std::to_string(i);
        t.dtype = qs::DType::F32;
        t.shape = {values / 256, 256};
        t.bytes = values * 4;
        t.fileIndex = file;
        t.offset = uint64_t(i) * values * 4;
        model->addTensor(t);
    }
    model->finalize();
    return model;
}

} // namespace

class TestStats : public QObject {
    Q_OBJECT

private slots:
    void f32WithSpecialsMatchesReference_data()
    {
        QTest::addColumn<int>("threads");
        QTest::addColumn<int>("misalign");
        QTest::newRow("1 thread") << 1 << 0;
        QTest::newRow("2 threads") << 2 << 0;
        QTest::newRow("4 threads, misaligned data") << 4 << 2;
    }

    void f32WithSpecialsMatchesReference()
    {
        QFETCH(int, threads);
        QFETCH(int, misalign);
        // 300 x 999: several 64 Ki-element chunks whose boundaries cut rows.
        auto x = gaussian(300 * 999, 0.01, 0.05, 1);
        for (size_t i = 0; i < x.size(); i += 997)
            x[i] = 0;
        x[5] = std::numeric_limits<float>::quiet_NaN();
        x[70000] = std::numeric_limits<float>::infinity();
        x[140000] = -std::numeric_limits<float>::infinity();
        x[200000] = 3.5f;                          // an outlier
        for (size_t i = 999 * 7; i < 999 * 8; ++i) // a whole channel of NaN
            x[i] = std::numeric_limits<float>::quiet_NaN();
        TestModel m({{"w", qs::DType::F32, {300, 999}, f32Bytes(x)}}, size_t(misalign));
        qs::StatsOptions o;
        o.threads = unsigned(threads);
        o.chunkBytes = 1; // smallest chunks
        const auto s = qs::computeTensorStats(m.model(), m.model().tensors()[0], o);
        QCOMPARE(s.channelLength, uint64_t(999));
        QCOMPARE(s.channelStd[7], 0.0f);
        QCOMPARE(s.channelAbsmax[7], 0.0f);
        QVERIFY(s.beyond6Sigma >= 1); // the outlier
        checkAgainstReference(m.model(), m.model().tensors()[0], s);

        // Results do not depend on the thread count: chunks merge in a fixed order.
        o.threads = 1;
        const auto s1 = qs::computeTensorStats(m.model(), m.model().tensors()[0], o);
        QCOMPARE(s.mean, s1.mean);
        QCOMPARE(s.m2, s1.m2);
        QCOMPARE(s.m4, s1.m4);
        QVERIFY(s.histogram == s1.histogram);
        QCOMPARE(s.channelStd, s1.channelStd);
    }

    void kernelLevelsAgree()
    {
        // Every instruction-set variant this CPU can run, against the reference and against each other.
        auto x = gaussian(50 * 777, 0.5, 2.0, 9);
        for (size_t i = 0; i < x.size(); i += 101)
            x[i] = 0;
        x[3] = std::numeric_limits<float>::quiet_NaN();
        x[900] = -std::numeric_limits<float>::infinity();
        x[1000] = 1e30f;
        auto h = x;
        h[1000] = 60000.0f; // within half range
        TestModel m({{"f32", qs::DType::F32, {50, 777}, f32Bytes(x)},
                     {"bf16", qs::DType::BF16, {50, 777}, bf16Bytes(x)},
                     {"f16", qs::DType::F16, {50, 777}, f16Bytes(h)}});
        const auto best = qs::detail::bestKernelLevel();
        std::vector<qs::TensorStats> baseline;
        for (int l = 0; l <= int(best); ++l) {
            qs::detail::setKernelLevel(qs::detail::KernelLevel(l));
            QCOMPARE(int(qs::detail::kernelLevel()), l);
            qInfo("kernels: %s", qs::detail::kernelLevelName(qs::detail::kernelLevel()));
            for (size_t t = 0; t < 3; ++t) {
                const auto s = qs::computeTensorStats(m.model(), m.model().tensors()[t]);
                checkAgainstReference(m.model(), m.model().tensors()[t], s);
                if (l == 0) {
                    baseline.push_back(s);
                    continue;
                }
                QCOMPARE(s.channelAbsmax, baseline[t].channelAbsmax);
                QVERIFY(s.histogram == baseline[t].histogram);
                QCOMPARE(s.beyond3Sigma, baseline[t].beyond3Sigma);
                QVERIFY_CLOSE(s.m4, baseline[t].m4, 1e-13);
                for (size_t c = 0; c < s.channelStd.size(); ++c)
                    QVERIFY_CLOSE(s.channelStd[c], baseline[t].channelStd[c], 1e-6);
            }
        }
        qs::detail::setKernelLevel(best);
    }

    void hugeOffsetKeepsPrecision()
    {
        // 1e6 + N(0, 1): naive Σx² − n·mean² loses every digit here.
        auto x = gaussian(200000, 1e6, 1.0, 2);
        TestModel m({{"w", qs::DType::F32, {200, 1000}, f32Bytes(x)}});
        qs::StatsOptions o;
        o.chunkBytes = 1;
        const auto s = qs::computeTensorStats(m.model(), m.model().tensors()[0], o);
        checkAgainstReference(m.model(), m.model().tensors()[0], s, 1e-11);
        QVERIFY(std::fabs(s.std - 1.0) < 0.01); // float rounding of 1e6 + x quantises to 1/16
    }

    void constantAndTinyTensors()
    {
        std::vector<float> c(5000, 0.25f), one{-7.5f}, empty;
        std::vector<float> nans(10, std::numeric_limits<float>::quiet_NaN());
        TestModel m({{"const", qs::DType::F32, {50, 100}, f32Bytes(c)},
                     {"one", qs::DType::F32, {1}, f32Bytes(one)},
                     {"scalar", qs::DType::F32, {}, f32Bytes(one)},
                     {"empty", qs::DType::F32, {0, 4}, f32Bytes(empty)},
                     {"nans", qs::DType::BF16, {10}, bf16Bytes(nans)}});
        const auto& ts = m.model().tensors();
        const auto s = qs::computeTensorStats(m.model(), ts[0]);
        QCOMPARE(s.mean, 0.25);
        QCOMPARE(s.std, 0.0);
        QVERIFY(std::isnan(s.kurtosis));
        QCOMPARE(s.beyond3Sigma, uint64_t(0));
        QCOMPARE(s.histogram.keys().size(), size_t(1));
        QCOMPARE(s.linearHistogram(10).counts, std::vector<uint64_t>({5000, 0, 0, 0, 0, 0, 0, 0, 0, 0}));

        for (int i : {1, 2}) {
            const auto o = qs::computeTensorStats(m.model(), ts[size_t(i)]);
            QCOMPARE(o.count, uint64_t(1));
            QCOMPARE(o.mean, -7.5);
            QCOMPARE(o.min, -7.5);
            QCOMPARE(o.absmax, 7.5);
            QCOMPARE(o.std, 0.0);
            QCOMPARE(o.channelAbsmax, std::vector<float>({7.5f}));
        }
        const auto e = qs::computeTensorStats(m.model(), ts[3]);
        QCOMPARE(e.count, uint64_t(0));
        QVERIFY(std::isnan(e.mean));
        QVERIFY(e.channelStd.empty());
        QVERIFY(e.linearHistogram(8).counts.empty());

        const auto n = qs::computeTensorStats(m.model(), ts[4]);
        QCOMPARE(n.nan, uint64_t(10));
        QCOMPARE(n.finite, uint64_t(0));
        QVERIFY(std::isnan(n.min) && std::isnan(n.std));
        QVERIFY(n.histogram.empty());
    }

    void sixteenAndEightBitTypesAreExact()
    {
        auto x = gaussian(64 * 1000, -0.002, 0.03, 3);
        x[10] = 0;
        x[11] = -0.0f;
        x[12] = std::numeric_limits<float>::infinity();
        x[13] = std::numeric_limits<float>::quiet_NaN();
        x[14] = 1.75f;
        std::vector<char> i8(4096);
        for (size_t i = 0; i < i8.size(); ++i)
            i8[i] = char(int(i * 37 % 256) - 128);
        TestModel m({{"bf16", qs::DType::BF16, {64, 1000}, bf16Bytes(x)},
                     {"f16", qs::DType::F16, {64, 1000}, f16Bytes(x)},
                     {"i8", qs::DType::I8, {64, 64}, i8},
                     {"u8", qs::DType::U8, {4096}, i8}},
                    1); // odd offset: 16-bit data misaligned
        qs::StatsOptions o;
        o.chunkBytes = 1;
        o.threads = 2;
        for (const auto& t : m.model().tensors()) {
            const auto s = qs::computeTensorStats(m.model(), t, o);
            checkAgainstReference(m.model(), t, s);
            QCOMPARE(s.histogram.exact(), t.dtype != qs::DType::F16);
        }
        const auto b = qs::computeTensorStats(m.model(), m.model().tensors()[0], o);
        QCOMPARE(b.zeros, uint64_t(2));
        QCOMPARE(b.inf, uint64_t(1));
        QCOMPARE(b.nan, uint64_t(1));
        // BF16 values are their own keys: the histogram equals direct binning of the values, any range.
        const auto x16 = decodeAll(m.model(), m.model().tensors()[0]);
        const auto zoom = b.histogram.linear(50, -0.05, 0.05);
        std::vector<uint64_t> direct(50, 0);
        uint64_t below = 0, above = 0;
        for (float v : x16) {
            if (!std::isfinite(v))
                continue;
            if (v < -0.05)
                ++below;
            else if (v > 0.05)
                ++above;
            else
                ++direct[std::min<size_t>(49, size_t(std::floor((double(v) + 0.05) / (0.1 / 50))))];
        }
        QCOMPARE(zoom.counts, direct);
        QCOMPARE(zoom.below, below);
        QCOMPARE(zoom.above, above);
    }

    void histogramsMergeExactly_data()
    {
        QTest::addColumn<int>("part");
        QTest::addColumn<int>("type");
        // Parts of 30000 values take the small-tensor (sparse) counting path, the whole the dense one.
        QTest::newRow("F32, large parts") << 70000 << int(qs::DType::F32);
        QTest::newRow("F32, small parts") << 30000 << int(qs::DType::F32);
        QTest::newRow("BF16, small parts") << 30000 << int(qs::DType::BF16);
        QTest::newRow("F16, small parts") << 30000 << int(qs::DType::F16);
    }

    void histogramsMergeExactly()
    {
        QFETCH(int, part);
        QFETCH(int, type);
        const auto dtype = qs::DType(type);
        const size_t width = dtype == qs::DType::F32 ? 4 : 2;
        // The same values as one tensor and as three parts (views of the same bytes).
        auto x = gaussian(3 * size_t(part), 0.0, 0.1, 4);
        for (size_t i = 0; i < x.size(); i += 1001)
            x[i] *= 100; // heavy tail
        const auto bytes = dtype == qs::DType::F32    ? f32Bytes(x)
                           : dtype == qs::DType::BF16 ? bf16Bytes(x)
                                                      : f16Bytes(x);
        x = {};
        std::vector<TestModel::Tensor> tensors{{"whole", dtype, {3, uint64_t(part)}, bytes}};
        const ptrdiff_t partBytes = ptrdiff_t(part) * ptrdiff_t(width);
        for (int p = 0; p < 3; ++p)
            tensors.push_back(
                {"part" + std::to_string(p),
                 dtype,
                 {uint64_t(part)},
                 std::vector<char>(bytes.begin() + p * partBytes, bytes.begin() + (p + 1) * partBytes)});
        TestModel m(tensors);
        qs::StatsOptions o;
        o.useCache = false;
        const auto all = qs::analyzeModel(m.model(), o);
        QCOMPARE(all.size(), size_t(4));
        const auto merged = qs::mergeStats({&all[1], &all[2], &all[3]});
        QVERIFY(merged.histogram == all[0].histogram); // bit-identical keys and counts
        QCOMPARE(merged.histogram.total(), uint64_t(3 * part));
        QCOMPARE(merged.linearHistogram(100).counts, all[0].linearHistogram(100).counts);
        QCOMPARE(merged.symlogHistogram(100, 0.01).counts, all[0].symlogHistogram(100, 0.01).counts);
        QCOMPARE(merged.min, all[0].min);
        QCOMPARE(merged.max, all[0].max);
        QVERIFY(std::fabs(merged.mean - all[0].mean) <= 1e-12 * all[0].std); // the mean is near 0
        QVERIFY_CLOSE(merged.std, all[0].std, 1e-12);
        QVERIFY_CLOSE(merged.kurtosis, all[0].kurtosis, 1e-10);
        QCOMPARE(merged.channelAbsmax.size(), size_t(3));
        QCOMPARE(merged.channelAbsmax, all[0].channelAbsmax);
    }

    void symlogResolvesBulkAndTails()
    {
        auto x = gaussian(100000, 0.0, 0.01, 5);
        x[0] = 5.0f;
        x[1] = -3.0f;
        TestModel m({{"w", qs::DType::BF16, {100000}, bf16Bytes(x)}});
        const auto s = qs::computeTensorStats(m.model(), m.model().tensors()[0]);
        const auto lin = s.linearHistogram(100);
        const auto sym = s.symlogHistogram(100);
        QVERIFY(sym.symlog);
        QCOMPARE(sym.linthresh, s.std);
        QCOMPARE(sym.edges.front(), s.min);
        QCOMPARE(sym.edges.back(), s.max);
        for (size_t i = 1; i < sym.edges.size(); ++i)
            QVERIFY(sym.edges[i] > sym.edges[i - 1]);
        auto occupied = [](const qs::BinnedHistogram& h) {
            return std::count_if(h.counts.begin(), h.counts.end(), [](uint64_t c) { return c > 0; });
        };
        // Linear bins of width 0.08 put the whole bulk into at most three bins; symlog spreads it out and
        // still shows both outliers in their own bins.
        QVERIFY(occupied(lin) <= 5);
        QVERIFY(occupied(sym) >= 20); // ±3σ alone spans 23 bins
        QCOMPARE(sym.counts.front(), uint64_t(1));
        QCOMPARE(sym.counts.back(), uint64_t(1));
        // Reference for one bin: values whose transform falls into the middle bin.
        const double c = s.std, tlo = -std::log1p(3.0 / c), thi = std::log1p(5.0 / c);
        const double w = (thi - tlo) / 100;
        uint64_t expected = 0;
        for (float v : decodeAll(m.model(), m.model().tensors()[0])) {
            const double t = std::copysign(std::log1p(std::fabs(double(v)) / c), double(v));
            if (std::min<size_t>(99, size_t(std::max(0.0, std::floor((t - tlo) / w)))) == 40)
                ++expected;
        }
        QCOMPARE(sym.counts[40], expected);
    }

    void streamsEveryTensorOnce()
    {
        std::vector<TestModel::Tensor> tensors;
        for (int i = 0; i < 12; ++i)
            tensors.push_back({"t" + std::to_string(i),
                               qs::DType::F32,
                               {100, 100},
                               f32Bytes(gaussian(10000, i, 1, unsigned(10 + i)))});
        tensors.push_back({"q", qs::DType::Q4_K, {1, 256}, std::vector<char>(144, 0)});
        TestModel m(tensors);
        qs::StatsOptions o;
        o.useCache = false;
        o.threads = 2;
        std::vector<int> seen(tensors.size(), 0);
        std::atomic<int> inCallback{0};
        bool overlapped = false;
        double lastProgress = 0;
        qs::JobControl job([&](double f, const std::string&) { lastProgress = std::max(lastProgress, f); });
        const auto all = qs::analyzeModel(m.model(), o, &job, [&](size_t index, const qs::TensorStats& s) {
            overlapped |= inCallback.fetch_add(1) != 0;
            QCOMPARE(s.name, tensors[index].name);
            ++seen[index];
            inCallback.fetch_sub(1);
        });
        QVERIFY(!overlapped);
        QCOMPARE(seen, std::vector<int>(tensors.size(), 1));
        QCOMPARE(all.size(), tensors.size());
        for (int i = 0; i < 12; ++i)
            QVERIFY(std::fabs(all[size_t(i)].mean - i) < 0.05);
        QCOMPARE(lastProgress, 1.0);
        // A type that cannot be decoded is reported, not fatal (until the ggml codec decodes Q4_K).
        if (!qs::dtypeInfo(qs::DType::Q4_K).decodable)
            QVERIFY(!all.back().error.empty());
        else
            QCOMPARE(all.back().finite, uint64_t(256));
    }

    void brokenTensorDoesNotAffectOthers()
    {
        TestModel m({{"a", qs::DType::F32, {300, 1000}, f32Bytes(gaussian(300000, 1, 2, 21))},
                     {"b", qs::DType::BF16, {300, 1000}, bf16Bytes(gaussian(300000, -1, 3, 22))}});
        qs::StatsOptions o;
        o.useCache = false;
        o.chunkBytes = 1;
        o.threads = 1;
        const auto alone = qs::analyzeModel(m.model(), o);
        // A tensor that claims more bytes than the file has, between the two good ones.
        qs::TensorInfo bad = m.model().tensors()[0];
        bad.name = "bad";
        bad.shape = {1000, 1000};
        bad.bytes = 4000000;
        m.model().addTensor(bad);
        m.model().finalize();
        o.tensors = {0, 2, 1};
        const auto all = qs::analyzeModel(m.model(), o);
        QVERIFY(!all[1].error.empty());
        QVERIFY(all[0].error.empty() && all[2].error.empty());
        QVERIFY(all[0].histogram == alone[0].histogram);
        QVERIFY(all[2].histogram == alone[1].histogram);
        QCOMPARE(all[2].mean, alone[1].mean);
        QVERIFY_EXCEPTION_THROWN(qs::computeTensorStats(m.model(), m.model().tensors()[2]), qs::Error);
    }

    void firstResultsArriveBeforeTheLastTensorIsRead()
    {
        std::vector<TestModel::Tensor> tensors;
        for (int i = 0; i < 8; ++i)
            tensors.push_back({"t" + std::to_string(i),
                               qs::DType::F32,
                               {256, 4096},
                               f32Bytes(gaussian(256 * 4096, 0, 1, unsigned(40 + i)))});
        TestModel m(tensors);
        qs::StatsOptions o;
        o.useCache = false;
        o.threads = 2;
        o.chunkBytes = 1;
        std::mutex mutex;
        double progress = 0;
        std::vector<double> progressAtResult;
        qs::JobControl job([&](double f, const std::string&) {
            std::lock_guard lock(mutex);
            progress = std::max(progress, f);
        });
        qs::analyzeModel(m.model(), o, &job, [&](size_t, const qs::TensorStats&) {
            std::lock_guard lock(mutex);
            progressAtResult.push_back(progress);
        });
        QCOMPARE(progressAtResult.size(), size_t(8));
        // Tensors complete in order while the rest is still being read.
        QVERIFY2(progressAtResult.front() < 0.3, qPrintable(QString::number(progressAtResult.front())));
        QVERIFY(progressAtResult[3] < 0.7);
    }

    void cancelReturnsPromptly()
    {
        // 1.5 GiB of zeros in a sparse file: far longer than the test allows if cancel were ignored.
        QTemporaryDir dir;
        const std::string path = dir.filePath(QStringLiteral("big.bin")).toStdString();
        const uint64_t tensorBytes = 256ull << 20;
        {
            std::ofstream out(path, std::ios::binary);
            out.seekp(std::streamoff(6 * tensorBytes - 1));
            out.put('\0');
        }
        auto model = std::make_shared<qs::Model>(qs::ModelFormat::Safetensors, path);
        const uint32_t file = model->addFile(qs::MappedFile::open(path));
        for (int i = 0; i < 6; ++i) {
            qs::TensorInfo t;
            t.name = "big" + std::to_string(i);
            t.dtype = qs::DType::F32;
            t.shape = {tensorBytes / 4 / 4096, 4096};
            t.bytes = tensorBytes;
            t.fileIndex = file;
            t.offset = uint64_t(i) * tensorBytes;
            model->addTensor(t);
        }
        model->finalize();
        // No clock: the handler cancels at the first report, so the run must end Cancelled having read only
        // the chunks already in flight, never the whole model.
        qs::StatsOptions o;
        o.useCache = false;
        o.threads = 2;
        qs::JobControl* self = nullptr;
        std::optional<qs::JobProgress> first;
        qs::JobControl control([&](const qs::JobProgress& p) {
            if (!first) {
                first = p;
                self->cancel();
            }
        });
        self = &control;
        std::atomic<int> done{0};
        qs::FunctionJob job("stats", [&](qs::JobControl&) {
            qs::analyzeModel(*model, o, &control, [&](size_t, const qs::TensorStats&) { ++done; });
        });
        QCOMPARE(job.run(), qs::JobStatus::Cancelled);
        QVERIFY(first);
        const uint64_t total = 2 * 6 * tensorBytes; // float tensors are read twice (moments, then counts)
        QCOMPARE(first->bytesTotal, total);
        const qs::JobProgress last = control.progress();
        QCOMPARE(last.bytesTotal, total);
        QVERIFY2(last.bytesDone < total / 2, qPrintable(QString::number(last.bytesDone)));
        QVERIFY(done < 6);
    }

    // Finished tensors reach the owner through the job's queue while the job still works: the cached one
    // is handed over before the others are computed, and here the job never finishes them.
    void statsJobStreamsBeforeFinishing()
    {
        QTemporaryDir cacheDir, modelDir;
        const auto model = makeTwoTensorModel(modelDir);
        qs::StatsOptions o;
        o.cacheDir = cacheDir.path().toStdString();
        o.tensors = {0};
        qs::analyzeModel(*model, o); // caches tensor 0 only
        o.tensors.clear();
        qs::StatsJob job({model, o});
        job.cancel(); // tensor 1 must be computed, and the job stops at its first chunk
        QCOMPARE(job.run(), qs::JobStatus::Cancelled);
        const auto streamed = job.finishedTensors().take();
        QCOMPARE(streamed.size(), size_t(1));
        QCOMPARE(streamed.front().first, size_t(0));
        QVERIFY(streamed.front().second.fromCache);
        QVERIFY(job.result().tensors.empty());
    }

    void realWeightsMatchReference_data()
    {
        QTest::addColumn<QString>("path");
        QTest::newRow("ppocr (heavy tails)") << QStringLiteral(QS_TEST_DATA "/ppocr/model.safetensors");
        QTest::newRow("stories260K gguf") << QStringLiteral(QS_SAMPLE_DIR "/stories260K/stories260K.gguf");
        QTest::newRow("stories260K f32") << QStringLiteral(QS_SAMPLE_DIR "/stories260K/hf-f32");
        QTest::newRow("stories260K bf16 sharded")
            << QStringLiteral(QS_SAMPLE_DIR "/stories260K/hf-bf16-sharded");
        QTest::newRow("keras (channels last)") << QStringLiteral(QS_TEST_DATA "/hdf5/keras_model.h5");
    }

    void realWeightsMatchReference()
    {
        QFETCH(QString, path);
        std::shared_ptr<qs::Model> model;
        try {
            model = qs::openModel(path.toStdString());
        } catch (const qs::Error& e) {
            QFAIL(e.what());
        }
        qs::StatsOptions o;
        o.useCache = false;
        o.chunkBytes = 1;
        const auto all = qs::analyzeModel(*model, o);
        QCOMPARE(all.size(), model->tensors().size());
        double maxKurtosis = 0;
        for (size_t i = 0; i < all.size(); ++i) {
            checkAgainstReference(*model, model->tensors()[i], all[i], 1e-11);
            if (QTest::currentTestFailed())
                QFAIL(("in tensor " + all[i].name).c_str());
            if (std::isfinite(all[i].kurtosis))
                maxKurtosis = std::max(maxKurtosis, all[i].kurtosis);
        }
        if (path.contains(QLatin1String("ppocr")))
            QVERIFY2(maxKurtosis > 5000 && maxKurtosis < 7000, qPrintable(QString::number(maxKurtosis)));
        // Issue 13 #3: a Keras Conv2D kernel 3x3x1x2 has 2 output channels of 9 values (not 3 "channels" of
        // its kernel-row axis), a Dense kernel 8x3 has 3 outputs of 8 inputs.
        if (path.contains(QLatin1String("keras"))) {
            for (const auto& st : all) {
                if (st.name == "conv2d/kernel:0") {
                    QCOMPARE(st.channelAbsmax.size(), size_t(2));
                    QCOMPARE(st.channelLength, uint64_t(9));
                }
                if (st.name == "dense/kernel:0") {
                    QCOMPARE(st.channelAbsmax.size(), size_t(3));
                    QCOMPARE(st.channelLength, uint64_t(8));
                }
            }
        }
    }

    // GPT-2's Conv1D c_attn [in 8, out 24] (model_type "gpt2", y = x W): 24 output channels of 8 inputs, channel
    // c's absmax the largest |value| of stored column c, (c + 1) / 2. GPT-BigCode's c_attn is a Linear [out, in]:
    // its channels are the stored rows.
    void gpt2Conv1dChannels()
    {
        QTemporaryDir dir;
        std::vector<float> w(8 * 24);
        for (size_t i = 0; i < w.size(); ++i)
            w[i] = float(i % 24 + 1) * ((i / 24) % 2 ? -0.5f : 0.25f);
        for (const char* type : {"gpt2", "gpt_bigcode"}) {
            const QString folder = dir.filePath(QString::fromLatin1(type));
            QVERIFY(QDir().mkpath(folder));
            QFile config(folder + QStringLiteral("/config.json"));
            QVERIFY(config.open(QIODevice::WriteOnly));
            config.write(QByteArray("{\"model_type\":\"") + type +
                         "\",\"n_embd\":8,\"n_head\":2,\"n_layer\":1,\"vocab_size\":10,\"n_positions\":16}");
            config.close();
            const QString path = folder + QStringLiteral("/model.safetensors");
            QVERIFY(writeSafetensorsF32(path, {{"h.0.attn.c_attn.weight", {8, 24}, w}}));
            const auto model = qs::openModel(path.toStdString());
            qs::StatsOptions o;
            o.useCache = false;
            const auto all = qs::analyzeModel(*model, o);
            QCOMPARE(all.size(), size_t(1));
            const bool conv1d = std::string(type) == "gpt2";
            QCOMPARE(all[0].channelAbsmax.size(), size_t(conv1d ? 24 : 8));
            QCOMPARE(all[0].channelLength, uint64_t(conv1d ? 8 : 24));
            for (size_t c = 0; c < all[0].channelAbsmax.size(); ++c)
                QCOMPARE(double(all[0].channelAbsmax[c]), conv1d ? 0.5 * double(c + 1) : (c % 2 ? 12.0 : 6.0));
        }
    }
};

QTEST_APPLESS_MAIN(TestStats)
#include "tst_stats.moc"
