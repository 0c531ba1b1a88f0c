// The sensitivity matrix against direct whole-tensor round trips and metrics, on a GGUF built here.
#include "core/gguf_builder.h"
#include "core/jobs/jobs.h"
#include "core/model/model.h"
#include "core/quant/format.h"
#include "core/quant/imatrix.h"
#include "core/quant/sensitivity.h"
#include "core/util/fileio.h"
#include "core/util/error.h"
#include "core/util/job.h"

#include <QFile>
#include <sys/stat.h>
#include <QTemporaryDir>
#include <QTest>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>

using qstest::GgufBuilder;

namespace {

std::string f32Data(const std::vector<float>& v)
{
    std::string s(v.size() * 4, '\0');
    std::memcpy(s.data(), v.data(), s.size());
    return s;
}

std::vector<float> gaussian(size_t n, unsigned seed, float outlier = 0)
{
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0, 0.02f);
    std::vector<float> v(n);
    for (auto& x : v)
        x = d(rng);
    if (outlier != 0)
        v[n / 3] = outlier;
    return v;
}

bool close(double a, double b)
{
    if (std::isinf(a) || std::isinf(b))
        return a == b;
    return std::fabs(a - b) <= 1e-9 * std::max(std::fabs(a), std::fabs(b)) + 1e-300;
}

} // namespace

class TestSensitivity : public QObject {
    Q_OBJECT
    QTemporaryDir m_dir;
    std::shared_ptr<qs::Model> m_model;
    std::map<std::string, std::vector<float>> m_data;

private slots:
    void initTestCase()
    {
        GgufBuilder b;
        b.kv("general.architecture", GgufBuilder::vStr("llama"));
        auto add = [&](const std::string& name, uint64_t rows, uint64_t cols, std::vector<float> v) {
            b.tensors.push_back({name, {cols, rows}, 0, f32Data(v), std::nullopt, std::nullopt});
            m_data[name] = std::move(v);
        };
        add("blk.0.attn_q.weight", 40, 256, gaussian(40 * 256, 1, 0.5f));
        add("blk.0.ffn_down.weight", 33, 96, gaussian(33 * 96, 2));
        b.tensors.push_back(
            {"blk.0.attn_norm.weight", {256}, 0, f32Data(std::vector<float>(256, 1)), {}, {}});
        const QString path = m_dir.filePath(QStringLiteral("tiny.gguf"));
        QFile f(path);
        QVERIFY(f.open(QIODevice::WriteOnly));
        const std::string bytes = b.build();
        f.write(bytes.data(), static_cast<qint64>(bytes.size()));
        f.close();
        m_model = qs::openModel(path.toStdString());
        QCOMPARE(m_model->tensors().size(), size_t(3));
    }

    void matchesDirectComputation()
    {
        // An importance vector for attn_q only (legacy format, built in memory).
        std::string dat;
        auto put = [&](auto v) { dat += GgufBuilder::le(v); };
        put(int32_t(1));
        const std::string name = "blk.0.attn_q.weight";
        put(int32_t(name.size()));
        dat += name;
        put(int32_t(1));
        put(int32_t(256));
        std::vector<float> imp(256);
        for (int j = 0; j < 256; ++j)
            imp[j] = 0.5f + static_cast<float>(j % 7);
        for (float v : imp)
            put(v);
        const auto imatrix = qs::ImportanceMatrix::parseLegacy(
            {reinterpret_cast<const std::byte*>(dat.data()), dat.size()}, "m");

        qs::SensitivityOptions opt;
        opt.formats = {"BF16", "INT4-g128-asym", "INT8-tensor-sym", "FP8-E4M3", "NF4", "Q8_0", "Q4_K"};
        opt.importance = &imatrix;
        opt.chunkElements = 5 * 96; // forces many row chunks
        std::atomic<int> streamed{0};
        double lastProgress = 0;
        qs::JobControl job([&](double f, const std::string&) { lastProgress = f; });
        const auto results = qs::computeSensitivity(
            *m_model, opt, [&](const qs::SensitivityResult&) { ++streamed; }, &job);
        QCOMPARE(results.size(), size_t(2 * 7)); // the 1-D norm is not a candidate
        QCOMPARE(streamed.load(), 14);
        QCOMPARE(lastProgress, 1.0);
        for (const auto& r : results) {
            const auto& x = m_data.at(r.tensor);
            auto format = qs::findFormat(r.format);
            QCOMPARE(r.rows, r.tensor == name ? uint64_t(40) : uint64_t(33));
            if (!format->supports(r.rows, r.cols)) {
                QVERIFY(!r.ok()); // Q4_K needs rows of 256
                QCOMPARE(r.format, std::string("Q4_K"));
                continue;
            }
            QVERIFY2(r.ok(), r.error.c_str());
            QCOMPARE(r.bytes, *format->storedBytes(r.rows, r.cols));
            QCOMPARE(r.bitsPerWeight, 8.0 * r.bytes / (r.rows * r.cols));
            // The whole tensor at once, with the importance used the same way.
            const float* w = r.tensor == name ? imp.data() : nullptr;
            std::vector<float> y(x.size());
            format->roundTrip(x.data(), r.rows, r.cols, y.data(), w);
            const auto m = qs::computeErrorMetrics(x.data(), y.data(), r.rows, r.cols, w);
            QVERIFY2(close(r.metrics.mse, m.mse),
                     qPrintable(QString::fromStdString(r.tensor + " " + r.format)));
            QVERIFY(close(r.metrics.sqnrDb, m.sqnrDb));
            QVERIFY(close(r.metrics.cosine, m.cosine));
            QCOMPARE(r.metrics.maxAbsErr, m.maxAbsErr);
            QCOMPARE(r.metrics.count, r.rows * r.cols);
            QCOMPARE(bool(r.metrics.weightedMse), r.tensor == name);
            if (w)
                QVERIFY(close(*r.metrics.weightedMse, *m.weightedMse));
        }
        // Ordered by tensor, then format list.
        QCOMPARE(results[0].tensor, name);
        QCOMPARE(results[1].format, std::string("INT4-g128-asym"));
        // More bits, less error: INT8 beats INT4 on the same tensor, BF16 beats both.
        QVERIFY(results[0].metrics.sqnrDb > results[2].metrics.sqnrDb);
        QVERIFY(results[2].metrics.sqnrDb > results[1].metrics.sqnrDb);
    }

    void deterministicAcrossThreads()
    {
        qs::SensitivityOptions a;
        a.formats = {"INT3-g64-sym", "NF4", "FP8-E5M2-ch"};
        a.threads = 1;
        qs::SensitivityOptions b = a;
        b.threads = 2;
        b.chunkElements = 1000;
        const auto ra = qs::computeSensitivity(*m_model, a);
        const auto rb = qs::computeSensitivity(*m_model, b);
        QCOMPARE(ra.size(), rb.size());
        for (size_t i = 0; i < ra.size(); ++i) {
            QCOMPARE(ra[i].tensor, rb[i].tensor);
            QCOMPARE(ra[i].format, rb[i].format);
            QVERIFY(close(ra[i].metrics.mse, rb[i].metrics.mse));
            QCOMPARE(ra[i].metrics.maxAbsErr, rb[i].metrics.maxAbsErr);
        }
    }

    void filterCancelErrors()
    {
        qs::SensitivityOptions opt;
        opt.formats = {"INT8-ch-sym"};
        opt.tensorFilter = [](const qs::TensorInfo& t) {
            return t.name.find("ffn_down") != std::string::npos;
        };
        const auto r = qs::computeSensitivity(*m_model, opt);
        QCOMPARE(r.size(), size_t(1));
        QCOMPARE(r[0].tensor, std::string("blk.0.ffn_down.weight"));

        qs::JobControl job;
        job.cancel();
        QVERIFY_THROWS_EXCEPTION(qs::CancelledError, qs::computeSensitivity(*m_model, opt, {}, &job));

        opt.formats = {"INT4-g128-asym", "no-such-format"};
        QVERIFY_THROWS_EXCEPTION(qs::Error, qs::computeSensitivity(*m_model, opt));

        // Default list when none is given.
        qs::SensitivityOptions def;
        def.tensorFilter = opt.tensorFilter;
        QCOMPARE(qs::computeSensitivity(*m_model, def).size(), qs::defaultSensitivityFormats().size());
    }
    void cache()
    {
        QTemporaryDir cacheDir;
        qs::SensitivityOptions opt;
        opt.formats = {"INT4-g128-asym", "NF4", "Q4_K"};
        opt.useCache = true;
        opt.cacheDir = cacheDir.path().toStdString();
        const auto file = qs::sensitivityCacheFile(*m_model, opt.cacheDir);
        QVERIFY(file.parent_path() == opt.cacheDir);
        const auto first = qs::computeSensitivity(*m_model, opt);
        QCOMPARE(first.size(), size_t(6));
        for (const auto& r : first)
            QVERIFY(!r.fromCache);
        QVERIFY(std::filesystem::exists(file));

        auto same = [](const qs::SensitivityResult& a, const qs::SensitivityResult& b) {
            return a.tensor == b.tensor && a.format == b.format && a.bytes == b.bytes && a.error == b.error &&
                   a.metrics.mse == b.metrics.mse && a.metrics.sqnrDb == b.metrics.sqnrDb &&
                   a.metrics.cosine == b.metrics.cosine && a.metrics.maxAbsErr == b.metrics.maxAbsErr &&
                   a.metrics.relMse == b.metrics.relMse && a.metrics.count == b.metrics.count &&
                   a.metrics.weightedMse == b.metrics.weightedMse && a.bitsPerWeight == b.bitsPerWeight;
        };
        // Second run: every computed cell comes from the cache, bit for bit; failed cells are not cached.
        const auto second = qs::computeSensitivity(*m_model, opt);
        QCOMPARE(second.size(), first.size());
        for (size_t i = 0; i < first.size(); ++i) {
            QVERIFY(same(first[i], second[i]));
            QCOMPARE(second[i].fromCache, first[i].ok());
        }
        QVERIFY(!second[5].ok()); // Q4_K on 96 columns

        // A new format is computed, the others still come from the cache.
        opt.formats.push_back("FP8-E4M3");
        for (const auto& r : qs::computeSensitivity(*m_model, opt))
            QCOMPARE(r.fromCache, r.ok() && r.format != "FP8-E4M3");

        // Importance makes different cells (and the plain ones stay cached beside them).
        std::string dat;
        auto put = [&](auto v) { dat += GgufBuilder::le(v); };
        put(int32_t(1));
        const std::string name = "blk.0.ffn_down.weight";
        put(int32_t(name.size()));
        dat += name;
        put(int32_t(1));
        put(int32_t(96));
        for (int j = 0; j < 96; ++j)
            put(float(1 + j % 3));
        const auto imatrix = qs::ImportanceMatrix::parseLegacy(
            {reinterpret_cast<const std::byte*>(dat.data()), dat.size()}, "m");
        qs::SensitivityOptions withImp = opt;
        withImp.importance = &imatrix;
        const auto a = qs::computeSensitivity(*m_model, withImp);
        const auto b = qs::computeSensitivity(*m_model, withImp);
        for (size_t i = 0; i < a.size(); ++i) {
            QVERIFY(same(a[i], b[i]));
            const bool hasImp = a[i].tensor == name;
            QCOMPARE(a[i].fromCache, a[i].ok() && !hasImp); // attn_q has no importance: its plain cells
            QCOMPARE(b[i].fromCache, a[i].ok());
            QCOMPARE(bool(b[i].metrics.weightedMse), hasImp && a[i].ok());
        }

        // A corrupt cache is ignored and rewritten.
        {
            QFile f(QString::fromStdString(file.string()));
            QVERIFY(f.open(QIODevice::WriteOnly));
            f.write("{\"version\": 7, \"cells\": [1, 2");
        }
        for (const auto& r : qs::computeSensitivity(*m_model, opt))
            QVERIFY(!r.fromCache);
        for (const auto& r : qs::computeSensitivity(*m_model, opt))
            QCOMPARE(r.fromCache, r.ok());

        // A changed model file (modification time) invalidates every cell.
        const auto modelFile = m_model->files().front()->path();
        std::filesystem::last_write_time(modelFile, std::filesystem::last_write_time(modelFile) +
                                                        std::chrono::seconds(5));
        for (const auto& r : qs::computeSensitivity(*m_model, opt))
            QVERIFY(!r.fromCache);

        // Without useCache nothing is read.
        opt.useCache = false;
        for (const auto& r : qs::computeSensitivity(*m_model, opt))
            QVERIFY(!r.fromCache);
    }

    // The cache is keyed on the model's files, not on the path as typed: a model opened as its folder (the
    // GUI) and as the file in it (the CLI) share one cache file, and the second open reads what the first
    // wrote.
    // A FIFO planted where the cache file goes must not block the computation: caches are read as regular
    // files only (readCacheFile), and the atomic write replaces it.
    void cacheFifoDoesNotBlock()
    {
        QTemporaryDir cacheDir;
        qs::SensitivityOptions opt;
        opt.formats = {"Q8_0"};
        opt.useCache = true;
        opt.cacheDir = cacheDir.path().toStdString();
        const auto file = qs::sensitivityCacheFile(*m_model, opt.cacheDir);
        QCOMPARE(::mkfifo(file.c_str(), 0600), 0);
        const auto cells = qs::computeSensitivity(*m_model, opt);
        QVERIFY(!cells.empty());
        for (const auto& c : cells)
            QVERIFY(!c.fromCache);
        QVERIFY(std::filesystem::is_regular_file(file));
        QVERIFY(!qs::readCacheFile(cacheDir.path().toStdString() + "/missing.json", 1024));
    }

    void cacheFolderAndFileAreOneModel()
    {
        const std::string folder = QS_SAMPLE_DIR "/stories260K/hf-f32";
        const auto byFolder = qs::openModel(folder);
        const auto byFile = qs::openModel(folder + "/model.safetensors");
        QTemporaryDir cacheDir;
        const std::filesystem::path dir = cacheDir.path().toStdString();
        const auto file = qs::sensitivityCacheFile(*byFolder, dir);
        QVERIFY(!file.empty());
        QCOMPARE(qs::sensitivityCacheFile(*byFile, dir), file);

        qs::SensitivityOptions opt;
        opt.formats = {"INT8-ch-sym"};
        opt.useCache = true;
        opt.cacheDir = dir;
        const auto first = qs::computeSensitivity(*byFolder, opt);
        QVERIFY(!first.empty());
        QVERIFY(std::filesystem::exists(file));
        for (const auto& r : qs::computeSensitivity(*byFile, opt))
            QCOMPARE(r.fromCache, r.ok());
    }

    // Finished cells reach the owner through the job's queue while the job still works: the cached
    // tensor's cells are handed over, then the job stops (cancelled) before measuring the other one.
    void sensitivityJobStreamsBeforeFinishing()
    {
        QTemporaryDir cacheDir;
        qs::SensitivityOptions opt;
        opt.formats = {"NF4"};
        opt.threads = 1; // one worker takes the tensor with cached cells (attn_q) first
        opt.useCache = true;
        opt.cacheDir = cacheDir.path().toStdString();
        opt.tensorFilter = [](const qs::TensorInfo& t) { return t.name == "blk.0.attn_q.weight"; };
        QCOMPARE(qs::computeSensitivity(*m_model, opt).size(), size_t(1)); // caches attn_q only
        opt.tensorFilter = {};
        qs::SensitivityJob job({m_model, opt, {}});
        job.cancel(); // ffn_down must be measured: the job stops at its first chunk
        QCOMPARE(job.run(), qs::JobStatus::Cancelled);
        const auto streamed = job.finishedCells().take();
        QCOMPARE(streamed.size(), size_t(1));
        QCOMPARE(streamed.front().tensor, std::string("blk.0.attn_q.weight"));
        QVERIFY(streamed.front().fromCache);
        QVERIFY(job.result().cells.empty());
    }

    // The order of work changes only when cells arrive: every order returns the same cells, and the smallest
    // tensor's cells (ffn_down, 33x96) are delivered first by default, before the larger attn_q (40x256).
    void orderChangesOnlyDelivery()
    {
        qs::SensitivityOptions opt;
        opt.formats = {"NF4", "Q4_K", "INT8-ch-sym"}; // Q4_K cannot take 96 columns: a failed cell
        opt.threads = 1;
        std::vector<std::vector<qs::SensitivityResult>> returned, streamed;
        for (auto order : {qs::SensitivityOrder::SmallestFirst, qs::SensitivityOrder::LargestFirst,
                           qs::SensitivityOrder::ModelOrder}) {
            opt.order = order;
            std::vector<qs::SensitivityResult> cells;
            returned.push_back(qs::computeSensitivity(*m_model, opt,
                                                      [&](const qs::SensitivityResult& r) { cells.push_back(r); }));
            streamed.push_back(cells);
        }
        QCOMPARE(streamed[0].front().tensor, std::string("blk.0.ffn_down.weight"));
        QCOMPARE(streamed[1].front().tensor, std::string("blk.0.attn_q.weight"));
        QCOMPARE(streamed[2].front().tensor, std::string("blk.0.attn_q.weight"));
        // The failed cell of a tensor is delivered before its measured ones (known without reading weights).
        QCOMPARE(streamed[0].front().format, std::string("Q4_K"));
        QVERIFY(!streamed[0].front().ok());
        auto key = [](const qs::SensitivityResult& r) { return r.tensor + '/' + r.format; };
        for (size_t o = 0; o < returned.size(); ++o) {
            QCOMPARE(returned[o].size(), size_t(6));
            QCOMPARE(streamed[o].size(), size_t(6));
            auto sorted = streamed[o];
            std::sort(sorted.begin(), sorted.end(), [&](const auto& a, const auto& b) { return key(a) < key(b); });
            auto reference = returned[0];
            std::sort(reference.begin(), reference.end(),
                      [&](const auto& a, const auto& b) { return key(a) < key(b); });
            for (size_t i = 0; i < sorted.size(); ++i) {
                // The returned list is in model order whatever the order of work.
                QCOMPARE(key(returned[o][i]), key(returned[0][i]));
                QCOMPARE(key(sorted[i]), key(reference[i]));
                QCOMPARE(sorted[i].ok(), reference[i].ok());
                QCOMPARE(sorted[i].bytes, reference[i].bytes);
                QCOMPARE(sorted[i].metrics.mse, reference[i].metrics.mse); // bit-identical
                QCOMPARE(sorted[i].metrics.sqnrDb, reference[i].metrics.sqnrDb);
            }
        }
    }

    // Progress counts bytes of tensor data measured, ending at every candidate's bytes.
    void progressInBytes()
    {
        qs::SensitivityOptions opt;
        opt.formats = {"NF4"};
        uint64_t total = 0;
        for (const auto& t : m_model->tensors())
            if (qs::isSensitivityCandidate(t))
                total += t.bytes;
        std::vector<qs::JobProgress> seen;
        qs::JobControl control([&](const qs::JobProgress& p) { seen.push_back(p); });
        qs::computeSensitivity(*m_model, opt, {}, &control);
        QVERIFY(!seen.empty());
        for (size_t i = 0; i < seen.size(); ++i) {
            QCOMPARE(seen[i].bytesTotal, total);
            if (i > 0)
                QVERIFY(seen[i].bytesDone >= seen[i - 1].bytesDone);
        }
        QCOMPARE(seen.back().bytesDone, total);
    }
};

QTEST_APPLESS_MAIN(TestSensitivity)
#include "tst_sensitivity.moc"
