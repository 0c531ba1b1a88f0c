// Error metrics against hand computations.
#include "core/quant/metrics.h"

#include <QTest>
#include <cmath>
#include <limits>
#include <random>

class TestMetrics : public QObject {
    Q_OBJECT
private slots:
    void handComputed()
    {
        // x = [[1, 2], [3, 4]], y = [[1, 2], [3, 5]]: e = [0, 0, 0, 1].
        const float x[4] = {1, 2, 3, 4};
        const float y[4] = {1, 2, 3, 5};
        const auto m = qs::computeErrorMetrics(x, y, 2, 2);
        QCOMPARE(m.count, uint64_t(4));
        QCOMPARE(m.mse, 0.25);
        QCOMPARE(m.meanSquare, 7.5);
        QCOMPARE(m.relMse, 1.0 / 30.0);
        QCOMPARE(m.sqnrDb, 10.0 * std::log10(30.0));
        QCOMPARE(m.maxAbsErr, 1.0);
        QCOMPARE(m.cosine, 34.0 / std::sqrt(30.0 * 39.0));
        QVERIFY(!m.weightedMse);
        // Importance [1, 3]: sum_ij imp_j e_ij^2 = 3 * 1; rows * sum imp = 2 * 4.
        const float imp[2] = {1, 3};
        const auto w = qs::computeErrorMetrics(x, y, 2, 2, imp);
        QCOMPARE(*w.weightedMse, 3.0 / 8.0);
        QCOMPARE(w.mse, 0.25); // the plain metrics do not change
        // The error in column 0 instead weighs 1.
        const float y2[4] = {1, 2, 4, 4};
        QCOMPARE(*qs::computeErrorMetrics(x, y2, 2, 2, imp).weightedMse, 1.0 / 8.0);
    }

    void constantImportanceIsMse()
    {
        std::mt19937 rng(1);
        std::normal_distribution<float> n(0, 1);
        std::vector<float> x(300), y(300), imp(30, 2.5f);
        for (size_t i = 0; i < x.size(); ++i) {
            x[i] = n(rng);
            y[i] = x[i] + 0.1f * n(rng);
        }
        const auto m = qs::computeErrorMetrics(x.data(), y.data(), 10, 30, imp.data());
        QCOMPARE(*m.weightedMse, m.mse);
        // Accumulating in row chunks (and merging) gives the same numbers.
        qs::ErrorAccumulator a, b;
        a.add(x.data(), y.data(), 4, 30, imp.data());
        b.add(x.data() + 120, y.data() + 120, 6, 30, imp.data());
        a.merge(b);
        const auto c = a.result();
        QCOMPARE(c.count, uint64_t(300));
        QCOMPARE(c.mse, m.mse);
        QCOMPARE(c.sqnrDb, m.sqnrDb);
        QCOMPARE(c.cosine, m.cosine);
        QCOMPARE(c.maxAbsErr, m.maxAbsErr);
        QCOMPARE(*c.weightedMse, *m.weightedMse);
        // A chunk without importance makes the weighted figure unavailable rather than wrong.
        qs::ErrorAccumulator d;
        d.add(x.data(), y.data(), 4, 30, imp.data());
        d.add(x.data() + 120, y.data() + 120, 6, 30);
        QVERIFY(!d.result().weightedMse);
    }

    void doubleAccumulation()
    {
        // 2^24 + 1 ones would stall a float sum at 2^24.
        const uint64_t n = (uint64_t(1) << 24) + 8;
        std::vector<float> x(n, 1.0f), y(n, 1.0f);
        y[0] = 2.0f;
        const auto m = qs::computeErrorMetrics(x.data(), y.data(), 1, n);
        QCOMPARE(m.meanSquare, 1.0);
        QCOMPARE(m.relMse, 1.0 / static_cast<double>(n));
    }

    void edgeCases()
    {
        const float z[3] = {0, 0, 0};
        const float x[3] = {1, -1, 2};
        auto same = qs::computeErrorMetrics(x, x, 1, 3);
        QCOMPARE(same.mse, 0.0);
        QVERIFY(std::isinf(same.sqnrDb) && same.sqnrDb > 0);
        QCOMPARE(same.cosine, 1.0);
        auto zeros = qs::computeErrorMetrics(z, z, 1, 3);
        QCOMPARE(zeros.relMse, 0.0);
        QCOMPARE(zeros.cosine, 1.0);
        auto allLost = qs::computeErrorMetrics(x, z, 1, 3);
        QCOMPARE(allLost.relMse, 1.0);
        QCOMPARE(allLost.sqnrDb, 0.0);
        QCOMPARE(allLost.cosine, 0.0);
        QCOMPARE(allLost.maxAbsErr, 2.0);
        auto fromZero = qs::computeErrorMetrics(z, x, 1, 3);
        QVERIFY(std::isinf(fromZero.relMse));
        const float zeroImp[3] = {0, 0, 0};
        QVERIFY(!qs::computeErrorMetrics(x, z, 1, 3, zeroImp).weightedMse);
        QCOMPARE(qs::ErrorAccumulator().result().count, uint64_t(0));
    }
};

QTEST_APPLESS_MAIN(TestMetrics)
#include "tst_metrics.moc"
