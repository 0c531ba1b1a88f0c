// The statistics cache: hits on a second run, invalidated by a changed model file, and never trusted when
// damaged (ignored, rebuilt, no crash).
#include "core/model/model.h"
#include "core/stats/stats.h"
#include "core/stats/statscache.h"
#include "stats_reference.h"

#include <QtTest>
#include <random>

using namespace qstest;

namespace {

std::vector<char> randomF32(size_t n, unsigned seed)
{
    std::mt19937 rng(seed);
    std::student_t_distribution<float> d(3.0f);
    std::vector<float> v(n);
    for (auto& x : v)
        x = d(rng) * 0.02f;
    return f32Bytes(v);
}

std::vector<TestModel::Tensor> someTensors()
{
    return {{"a.weight", qs::DType::F32, {64, 100}, randomF32(6400, 1)},
            {"b.weight", qs::DType::BF16, {32, 50}, std::vector<char>(3200, 1)},
            {"c.bias", qs::DType::F32, {64}, randomF32(64, 2)},
            {"empty", qs::DType::F32, {0}, {}}};
}

int cachedCount(const std::vector<qs::TensorStats>& all)
{
    return int(std::count_if(all.begin(), all.end(), [](const qs::TensorStats& s) { return s.fromCache; }));
}

void compareStats(const qs::TensorStats& a, const qs::TensorStats& b)
{
    QCOMPARE(a.name, b.name);
    QCOMPARE(a.dtype, b.dtype);
    QCOMPARE(a.shape, b.shape);
    QCOMPARE(a.count, b.count);
    QCOMPARE(a.finite, b.finite);
    QCOMPARE(a.zeros, b.zeros);
    QCOMPARE(a.beyond3Sigma, b.beyond3Sigma);
    QCOMPARE(a.beyond6Sigma, b.beyond6Sigma);
    auto same = [](double x, double y) { return x == y || (std::isnan(x) && std::isnan(y)); };
    QVERIFY(same(a.mean, b.mean) && same(a.std, b.std) && same(a.kurtosis, b.kurtosis));
    QVERIFY(same(a.min, b.min) && same(a.max, b.max) && same(a.m4, b.m4));
    QVERIFY(a.histogram == b.histogram);
    QCOMPARE(a.channelAbsmax, b.channelAbsmax);
    QCOMPARE(a.channelStd, b.channelStd);
}

} // namespace

class TestStatsCache : public QObject {
    Q_OBJECT

private:
    QTemporaryDir m_cacheDir;

    qs::StatsOptions options() const
    {
        qs::StatsOptions o;
        o.cacheDir = m_cacheDir.path().toStdString();
        return o;
    }

    std::filesystem::path cacheFile(const qs::Model& model) const
    {
        return qs::StatsCache(model, options().cacheDir).file();
    }

private slots:
    void secondRunHitsCache()
    {
        TestModel m(someTensors());
        const auto first = qs::analyzeModel(m.model(), options());
        QCOMPARE(cachedCount(first), 0);
        QVERIFY(std::filesystem::exists(cacheFile(m.model())));
        QVERIFY(cacheFile(m.model()).string().rfind(m_cacheDir.path().toStdString(), 0) == 0);
        int streamed = 0;
        const auto second =
            qs::analyzeModel(m.model(), options(), nullptr, [&](size_t, const qs::TensorStats& s) {
                QVERIFY(s.fromCache);
                ++streamed;
            });
        QCOMPARE(streamed, 4);
        QCOMPARE(cachedCount(second), 4);
        for (size_t i = 0; i < first.size(); ++i)
            compareStats(first[i], second[i]);

        qs::StatsOptions off = options();
        off.useCache = false;
        QCOMPARE(cachedCount(qs::analyzeModel(m.model(), off)), 0);
    }

    void emptyArraysRoundTrip()
    {
        TestModel m({{"empty", qs::DType::F32, {0}, {}}, {"nan", qs::DType::F32, {1}, f32Bytes({NAN})}});
        QCOMPARE(cachedCount(qs::analyzeModel(m.model(), options())), 0);
        const auto again = qs::analyzeModel(m.model(), options());
        QCOMPARE(cachedCount(again), 2);
        QCOMPARE(again[1].nan, uint64_t(1));
        QVERIFY(again[1].histogram.empty());
    }

    void subsetsAccumulate()
    {
        TestModel m(someTensors());
        auto o = options();
        o.tensors = {2};
        QCOMPARE(cachedCount(qs::analyzeModel(m.model(), o)), 0);
        o.tensors = {0, 2};
        const auto two = qs::analyzeModel(m.model(), o);
        QVERIFY(!two[0].fromCache && two[1].fromCache);
        QCOMPARE(two[1].name, std::string("c.bias"));
        o.tensors.clear();
        const auto all = qs::analyzeModel(m.model(), o);
        QCOMPARE(cachedCount(all), 2);
        QCOMPARE(cachedCount(qs::analyzeModel(m.model(), o)), 4);
    }

    void touchingTheModelInvalidates()
    {
        TestModel m(someTensors());
        qs::analyzeModel(m.model(), options());
        QCOMPARE(cachedCount(qs::analyzeModel(m.model(), options())), 4);
        const auto t = std::filesystem::last_write_time(m.path());
        std::filesystem::last_write_time(m.path(), t + std::chrono::seconds(5));
        QCOMPARE(cachedCount(qs::analyzeModel(m.model(), options())), 0);
        QCOMPARE(cachedCount(qs::analyzeModel(m.model(), options())), 4); // rebuilt for the new time
    }

    void damagedCacheIsIgnoredAndRebuilt_data()
    {
        QTest::addColumn<QString>("damage");
        QTest::newRow("flipped byte") << QStringLiteral("flip");
        QTest::newRow("truncated") << QStringLiteral("truncate");
        QTest::newRow("garbage of the same size") << QStringLiteral("garbage");
        QTest::newRow("hostile HDF5 file") << QStringLiteral("cve");
        QTest::newRow("side file missing") << QStringLiteral("nosum");
        QTest::newRow("side file wrong") << QStringLiteral("badsum");
    }

    void damagedCacheIsIgnoredAndRebuilt()
    {
        QFETCH(QString, damage);
        TestModel m(someTensors());
        const auto reference = qs::analyzeModel(m.model(), options());
        const auto file = cacheFile(m.model());
        auto sum = file;
        sum += ".sum";
        QVERIFY(std::filesystem::exists(sum));
        const auto size = std::filesystem::file_size(file);
        if (damage == QLatin1String("flip")) {
            std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
            f.seekg(std::streamoff(size / 2));
            const char c = char(f.get());
            f.seekp(std::streamoff(size / 2));
            f.put(char(c ^ 0x40));
        } else if (damage == QLatin1String("truncate")) {
            std::filesystem::resize_file(file, size / 3);
        } else if (damage == QLatin1String("garbage")) {
            std::ofstream f(file, std::ios::binary | std::ios::trunc);
            std::mt19937 rng(3);
            for (uintmax_t i = 0; i < size; ++i)
                f.put(char(rng()));
        } else if (damage == QLatin1String("cve")) {
            // A file that crashes libhdf5 when read: it must never reach libhdf5.
            std::filesystem::copy_file(QS_TEST_DATA "/bad-inputs/hdf5/cve-2017-17507.h5", file,
                                       std::filesystem::copy_options::overwrite_existing);
        } else if (damage == QLatin1String("nosum")) {
            std::filesystem::remove(sum);
        } else {
            std::ofstream f(sum, std::ios::binary | std::ios::trunc);
            f << "quantscope-stats-cache 1\nsize " << size << "\nsha256 " << std::string(64, '0') << "\n";
        }
        qs::StatsCache probe(m.model(), options().cacheDir);
        QCOMPARE(probe.load(), size_t(0));
        const auto again = qs::analyzeModel(m.model(), options());
        QCOMPARE(cachedCount(again), 0);
        for (size_t i = 0; i < again.size(); ++i)
            compareStats(again[i], reference[i]);
        QCOMPARE(cachedCount(qs::analyzeModel(m.model(), options())), 4); // rebuilt
    }

    void environmentChoosesTheDirectory()
    {
        QTemporaryDir dir;
        qputenv("QUANTSCOPE_CACHE_DIR", dir.path().toUtf8());
        QCOMPARE(qs::StatsCache::defaultDirectory(), std::filesystem::path(dir.path().toStdString()));
        TestModel m(someTensors());
        qs::analyzeModel(m.model()); // default options: cache on, default directory
        QCOMPARE(qs::StatsCache(m.model()).file().parent_path(),
                 std::filesystem::path(dir.path().toStdString()));
        QVERIFY(std::filesystem::exists(qs::StatsCache(m.model()).file()));
        qunsetenv("QUANTSCOPE_CACHE_DIR");
    }

    void unwritableDirectoryIsNotFatal()
    {
        TestModel m(someTensors());
        qs::StatsOptions o;
        o.cacheDir = "/proc/quantscope-no-such-dir";
        QCOMPARE(cachedCount(qs::analyzeModel(m.model(), o)), 0);
        QCOMPARE(cachedCount(qs::analyzeModel(m.model(), o)), 0);
    }
};

QTEST_APPLESS_MAIN(TestStatsCache)
#include "tst_stats_cache.moc"
