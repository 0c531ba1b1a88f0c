// The sampled sensitivity matrix (SensitivityOptions::exact = false) against the exact one on real weights:
// code-3m (learned Llama weights every ggml type can store) and PP-OCR (heavy-tailed F32, per-tensor and
// cross-row formats). The 95 % intervals must hold the exact value for the vast majority of cells, a sample
// that would cover half a tensor or more gives the exact cells bit for bit, the same seed gives the same
// cells, and sampled cells are cached apart from exact ones.
#include "core/gguf_builder.h"
#include "core/model/model.h"
#include "core/quant/format.h"
#include "core/quant/imatrix.h"
#include "core/quant/sensitivity.h"

#include <QTemporaryDir>
#include <QTest>
#include <cmath>
#include <cstring>
#include <map>
#include <random>

namespace {

const std::string kCode3m = QS_TEST_DATA "/code-3m/quantscope-code-3m-Q8_0.gguf";
const std::string kPpocr = QS_TEST_DATA "/ppocr/model.safetensors";

using Cells = std::map<std::pair<std::string, std::string>, qs::SensitivityResult>;

Cells byCell(const std::vector<qs::SensitivityResult>& results)
{
    Cells cells;
    for (const auto& r : results)
        cells[{r.tensor, r.format}] = r;
    return cells;
}

bool sameBits(double a, double b)
{
    return std::memcmp(&a, &b, sizeof a) == 0;
}

bool sameCell(const qs::SensitivityResult& a, const qs::SensitivityResult& b)
{
    const auto &x = a.metrics, &y = b.metrics;
    bool same = a.error == b.error && a.bytes == b.bytes && x.count == y.count && sameBits(x.mse, y.mse) &&
                sameBits(x.relMse, y.relMse) && sameBits(x.sqnrDb, y.sqnrDb) &&
                sameBits(x.maxAbsErr, y.maxAbsErr) && sameBits(x.cosine, y.cosine) &&
                sameBits(x.meanSquare, y.meanSquare) && a.isSampled() == b.isSampled();
    if (same && a.sample)
        same = a.sample->rowsMeasured == b.sample->rowsMeasured && sameBits(a.sample->mseLow, b.sample->mseLow) &&
               sameBits(a.sample->mseHigh, b.sample->mseHigh) &&
               sameBits(a.sample->sqnrLowDb, b.sample->sqnrLowDb) &&
               sameBits(a.sample->sqnrHighDb, b.sample->sqnrHighDb);
    return same;
}

qs::SensitivityOptions sampled(uint64_t seed)
{
    qs::SensitivityOptions o;
    o.exact = false;
    o.sampleFraction = 0.25;
    o.sampleMinRows = 16;
    o.sampleSeed = seed;
    return o;
}

} // namespace

class TestSensitivitySampling : public QObject {
    Q_OBJECT

private slots:
    // Over many seeds, the share of sampled cells whose interval holds the exact value.
    void intervalsCoverExact_data()
    {
        QTest::addColumn<QString>("path");
        QTest::addColumn<QStringList>("formats");
        QStringList all;
        for (const auto& f : qs::defaultSensitivityFormats())
            all << QString::fromStdString(f);
        QTest::newRow("code-3m") << QString::fromStdString(kCode3m) << all;
        QTest::newRow("ppocr") << QString::fromStdString(kPpocr)
                               << QStringList{"BF16", "INT8-ch-sym", "FP8-E4M3", "NF4", "INT4-tensor-sym"};
    }
    void intervalsCoverExact()
    {
        QFETCH(QString, path);
        QFETCH(QStringList, formats);
        auto model = qs::openModel(path.toStdString());
        qs::SensitivityOptions exact;
        for (const QString& f : formats)
            exact.formats.push_back(f.toStdString());
        // The matrices (PP-OCR's Linear weights). Its convolution kernels, measured since issue 13, have 16
        // to 480 rows: the default sample (256 rows at least) measures them exactly; forced down to 16-row
        // samples as here, their intervals hold the exact MSE in only ~84 % of cells (docs/sensitivity.md).
        exact.tensorFilter = [](const qs::TensorInfo& t) { return t.shape.size() == 2; };
        const Cells truth = byCell(qs::computeSensitivity(*model, exact));
        int cells = 0, mseIn = 0, sqnrIn = 0, unsampled = 0;
        double fraction = 0;
        for (uint64_t seed = 1; seed <= 12; ++seed) {
            qs::SensitivityOptions o = sampled(seed);
            o.formats = exact.formats;
            o.tensorFilter = exact.tensorFilter;
            for (const auto& r : qs::computeSensitivity(*model, o)) {
                const auto& t = truth.at({r.tensor, r.format});
                QCOMPARE(r.ok(), t.ok());
                if (!r.ok())
                    continue;
                if (!r.sample) {
                    // Too few rows to sample: measured exactly, the same bits as the exact run.
                    QVERIFY(sameCell(r, t));
                    ++unsampled;
                    continue;
                }
                const auto& s = *r.sample;
                QCOMPARE(r.metrics.count, s.rowsMeasured * r.cols);
                QVERIFY(s.rowsMeasured < r.rows);
                QCOMPARE(s.fraction, double(s.rowsMeasured) / double(r.rows));
                QCOMPARE(s.confidence, 0.95);
                QVERIFY(s.mseLow <= r.metrics.mse && r.metrics.mse <= s.mseHigh);
                QVERIFY(s.sqnrLowDb <= r.metrics.sqnrDb && r.metrics.sqnrDb <= s.sqnrHighDb);
                QVERIFY(r.metrics.maxAbsErr <= t.metrics.maxAbsErr); // the sample's largest error
                ++cells;
                fraction += s.fraction;
                mseIn += s.mseLow <= t.metrics.mse && t.metrics.mse <= s.mseHigh;
                sqnrIn += s.sqnrLowDb <= t.metrics.sqnrDb && t.metrics.sqnrDb <= s.sqnrHighDb;
            }
        }
        qInfo("%s: %d sampled cells (mean fraction %.3f), %d measured exactly; exact MSE inside the 95%% interval "
              "in %.1f%%, exact SQNR in %.1f%%",
              qPrintable(path.section(QLatin1Char('/'), -2)), cells, fraction / std::max(1, cells), unsampled,
              100.0 * mseIn / std::max(1, cells), 100.0 * sqnrIn / std::max(1, cells));
        QVERIFY(cells >= 100);
        QVERIFY(mseIn >= 0.88 * cells);
        QVERIFY(sqnrIn >= 0.88 * cells);
    }

    // With an importance vector (the k-quants quantize with it): the weighted MSE's interval holds the exact
    // value for the vast majority of cells too.
    void weightedIntervals()
    {
        auto model = qs::openModel(kCode3m);
        // A legacy imatrix for the four ffn_gate matrices (256 input columns), skewed like real activations.
        std::string dat;
        dat += qstest::GgufBuilder::le(int32_t(4));
        std::mt19937 rng(5);
        std::gamma_distribution<float> gamma(0.5f, 2.0f);
        for (int b = 0; b < 4; ++b) {
            const std::string name = "blk." + std::to_string(b) + ".ffn_gate.weight";
            dat += qstest::GgufBuilder::le(int32_t(name.size())) + name;
            dat += qstest::GgufBuilder::le(int32_t(1)) + qstest::GgufBuilder::le(int32_t(256));
            for (int j = 0; j < 256; ++j)
                dat += qstest::GgufBuilder::le(gamma(rng) + 0.01f);
        }
        const auto imatrix = qs::ImportanceMatrix::parseLegacy(
            {reinterpret_cast<const std::byte*>(dat.data()), dat.size()}, "synthetic.dat");
        qs::SensitivityOptions exact;
        exact.formats = {"Q4_K", "Q2_K", "INT4-g128-asym", "NF4"};
        exact.importance = &imatrix;
        exact.tensorFilter = [](const qs::TensorInfo& t) { return t.name.find("ffn_gate") != std::string::npos; };
        const Cells truth = byCell(qs::computeSensitivity(*model, exact));
        int cells = 0, inside = 0;
        for (uint64_t seed = 1; seed <= 12; ++seed) {
            qs::SensitivityOptions o = sampled(seed);
            o.formats = exact.formats;
            o.importance = exact.importance;
            o.tensorFilter = exact.tensorFilter;
            for (const auto& r : qs::computeSensitivity(*model, o)) {
                QVERIFY(r.ok() && r.sample && r.metrics.weightedMse);
                const auto& s = *r.sample;
                QVERIFY(s.weightedMseLow && s.weightedMseHigh);
                QVERIFY(*s.weightedMseLow <= *r.metrics.weightedMse && *r.metrics.weightedMse <= *s.weightedMseHigh);
                const double t = *truth.at({r.tensor, r.format}).metrics.weightedMse;
                ++cells;
                inside += *s.weightedMseLow <= t && t <= *s.weightedMseHigh;
            }
        }
        qInfo("weighted MSE inside the 95%% interval in %.1f%% of %d cells", 100.0 * inside / cells, cells);
        QCOMPARE(cells, 12 * 4 * 4);
        QVERIFY(inside >= 0.88 * cells);
    }

    // A sample that would cover half the rows or more is not drawn: the exact cells, bit for bit.
    void fullFractionIsExact()
    {
        auto model = qs::openModel(kCode3m);
        const auto exact = qs::computeSensitivity(*model, {});
        for (const double fraction : {1.0, 0.5}) {
            qs::SensitivityOptions o = sampled(3);
            o.sampleFraction = fraction;
            const auto all = qs::computeSensitivity(*model, o);
            QCOMPARE(all.size(), exact.size());
            for (size_t i = 0; i < all.size(); ++i) {
                QVERIFY(!all[i].isSampled());
                QVERIFY2(sameCell(all[i], exact[i]), (all[i].tensor + " " + all[i].format).c_str());
            }
        }
    }

    // Same seed: the same cells, whatever the thread count; another seed: another sample.
    void deterministic()
    {
        auto model = qs::openModel(kCode3m);
        qs::SensitivityOptions a = sampled(7), b = sampled(7), c = sampled(8);
        a.threads = 1;
        b.threads = 2;
        const auto ra = qs::computeSensitivity(*model, a), rb = qs::computeSensitivity(*model, b),
                   rc = qs::computeSensitivity(*model, c);
        QCOMPARE(ra.size(), rb.size());
        int differ = 0, isSampled = 0;
        for (size_t i = 0; i < ra.size(); ++i) {
            QVERIFY(sameCell(ra[i], rb[i]));
            isSampled += ra[i].isSampled();
            differ += ra[i].ok() && !sameCell(ra[i], rc[i]);
        }
        QVERIFY(isSampled > 0);
        QVERIFY(differ > 0);
    }

    // Sampled cells are cached under their own key: an exact run never takes them, a sampled run takes an
    // exact cell when there is one.
    void cacheKeepsSampledApart()
    {
        QTemporaryDir dir;
        auto model = qs::openModel(kCode3m);
        qs::SensitivityOptions s = sampled(1);
        s.formats = {"Q4_K", "INT8-ch-sym"};
        s.useCache = true;
        s.cacheDir = dir.path().toStdString();
        const auto first = qs::computeSensitivity(*model, s);
        const auto again = qs::computeSensitivity(*model, s);
        int sampledCells = 0;
        for (size_t i = 0; i < first.size(); ++i) {
            QVERIFY(!first[i].fromCache);
            QVERIFY(again[i].fromCache);
            QVERIFY(sameCell(first[i], again[i]));
            sampledCells += again[i].isSampled();
        }
        QVERIFY(sampledCells > 0);
        qs::SensitivityOptions e = s;
        e.exact = true;
        const auto exact = qs::computeSensitivity(*model, e);
        int fresh = 0;
        for (size_t i = 0; i < exact.size(); ++i) {
            QVERIFY(!exact[i].isSampled());
            // Cells of sampled tensors are measured anew; those measured exactly before come from the cache.
            QCOMPARE(exact[i].fromCache, !first[i].isSampled());
            fresh += !exact[i].fromCache;
        }
        QCOMPARE(fresh, sampledCells);
        // Now exact cells are cached: the sampled run returns them.
        const auto third = qs::computeSensitivity(*model, s);
        for (size_t i = 0; i < third.size(); ++i) {
            QVERIFY(third[i].fromCache);
            QVERIFY(!third[i].isSampled());
            QVERIFY(sameCell(third[i], exact[i]));
        }
    }
};

QTEST_APPLESS_MAIN(TestSensitivitySampling)
#include "tst_sensitivity_sampling.moc"
