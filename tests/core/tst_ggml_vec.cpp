// The vector row quantizers (SSE2, AVX2) produce exactly the scalar reference's bytes: random rows of
// many scales, blocks of zeros, ties of equal magnitude and opposite sign, huge finite values,
// subnormals, values on the MXFP4 exponent boundaries. (The scalar reference itself is checked against
// ggml's own output in tst_ggml_quantize.)
#include "core/quant/ggml.h"
#include "core/quant/ggml_vec.h"

#include <QtTest>
#include <bit>
#include <cmath>
#include <limits>
#include <random>

using qs::ggml::detail::QuantSimd;

namespace {

constexpr int64_t kCols = 256;

std::vector<float> awkwardRows()
{
    std::mt19937 rng(42);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::uniform_int_distribution<int> exponent(-140, 120);
    std::vector<float> v;
    auto row = [&](auto gen) {
        for (int64_t j = 0; j < kCols; ++j)
            v.push_back(gen(j));
    };
    for (int r = 0; r < 200; ++r) { // Gaussian rows of very different scales
        const float scale = std::ldexp(1.0f, exponent(rng));
        row([&](int64_t) { return normal(rng) * scale; });
    }
    for (int r = 0; r < 50; ++r) // every value its own scale, incl. subnormals and near FLT_MAX
        row([&](int64_t) { return std::ldexp(normal(rng), exponent(rng)); });
    row([](int64_t) { return 0.0f; });
    row([](int64_t j) { return j % 2 ? -0.0f : 0.0f; });
    row([](int64_t j) { return j % 2 ? 0.0f : -0.0f; });
    row([](int64_t j) { return j % 5 == 0 ? (j % 3 ? -0.0f : 0.0f) : 0.25f * float(j % 5); }); // min is a zero
    row([](int64_t j) { return j % 4 == 1 ? 1.0f : -0.0f; });
    row([](int64_t j) { return (j % 3 ? 1.0f : -1.0f) * 0.75f; }); // ties of magnitude, both signs
    row([](int64_t j) { return j % 7 == 3 ? -2.5f : j % 7 == 5 ? 2.5f : 0.1f * float(j % 7); });
    row([](int64_t j) { return std::numeric_limits<float>::denorm_min() * float(j % 5) * (j % 2 ? 1 : -1); });
    row([](int64_t j) { return (j % 2 ? 1 : -1) * std::numeric_limits<float>::max() / float(1 + j % 3); });
    row([](int64_t j) { return (j % 2 ? 1 : -1) * std::numeric_limits<float>::min() * float(j % 9); });
    // MXFP4: block maxima just below, on and above powers of two; values on the midpoints of levels.
    row([](int64_t j) {
        const float p = std::ldexp(1.0f, int(j / 32) * 9 - 40);
        return j % 32 == 0 ? std::nextafter(p, 0.0f) * (j % 64 ? 1 : -1) : p * float(j % 32) / 37.0f;
    });
    row([](int64_t j) { return std::ldexp(float(j % 32) * 0.25f, int(j / 32) - 3) * (j % 3 ? 1 : -1); });
    return v;
}

std::vector<uint8_t> quantizeAt(QuantSimd level, qs::DType type, const std::vector<float>& x)
{
    qs::ggml::detail::setQuantSimd(level);
    const uint64_t rows = x.size() / kCols;
    std::vector<uint8_t> out(*qs::dtypeByteSize(type, kCols) * rows, 0xAA);
    qs::ggml::quantize(type, x.data(), rows, kCols, out.data());
    return out;
}

} // namespace

class TestGgmlVec : public QObject {
    Q_OBJECT

private slots:
    void cleanup() { qs::ggml::detail::setQuantSimd(qs::ggml::detail::bestQuantSimd()); }

    void vectorEqualsScalar_data()
    {
        QTest::addColumn<int>("type");
        QTest::newRow("Q4_0") << int(qs::DType::Q4_0);
        QTest::newRow("Q5_0") << int(qs::DType::Q5_0);
        QTest::newRow("Q4_1") << int(qs::DType::Q4_1);
        QTest::newRow("Q5_1") << int(qs::DType::Q5_1);
        QTest::newRow("Q3_K") << int(qs::DType::Q3_K);
        QTest::newRow("MXFP4") << int(qs::DType::MXFP4);
    }

    void vectorEqualsScalar()
    {
        QFETCH(int, type);
        const auto t = qs::DType(type);
        const auto x = awkwardRows();
        const auto reference = quantizeAt(QuantSimd::Scalar, t, x);
        int levels = 0;
        for (QuantSimd level : {QuantSimd::Sse2, QuantSimd::Avx2}) {
            if (level > qs::ggml::detail::bestQuantSimd())
                continue;
            ++levels;
            const auto got = quantizeAt(level, t, x);
            QCOMPARE(qs::ggml::detail::quantSimd(), level);
            for (size_t i = 0; i < got.size(); ++i)
                if (got[i] != reference[i])
                    QFAIL(qPrintable(QStringLiteral("%1: byte %2 differs (%3 vs scalar %4)")
                                         .arg(QLatin1String(qs::ggml::detail::quantSimdName(level)))
                                         .arg(i)
                                         .arg(got[i])
                                         .arg(reference[i])));
        }
#if defined(__x86_64__)
        QVERIFY(levels >= 1); // SSE2 is the x86-64 baseline: a vector path always ran
#endif
    }

    void mxfp4ExponentEqualsLog2()
    {
        auto reference = [](float amax) -> uint8_t {
            if (!(amax > 0.0f))
                return 0;
            return uint8_t(std::clamp(std::floor(std::log2(amax)) - 2 + 127, 0.0f, 254.0f));
        };
        // Every exponent, the mantissas at the bottom and the top of the binade, and random ones.
        std::mt19937 rng(7);
        std::uniform_int_distribution<uint32_t> mantissa(0, 0x7FFFFF);
        for (uint32_t e = 0; e <= 255; ++e) {
            std::vector<uint32_t> ms = {0, 1, 2, 0x7FEFFF, 0x7FF000, 0x7FFFFE, 0x7FFFFF};
            for (int i = 0; i < 2000; ++i)
                ms.push_back(mantissa(rng));
            for (uint32_t m = 0x7FF000; m <= 0x7FFFFF; m += 17)
                ms.push_back(m);
            for (uint32_t m : ms) {
                const float a = std::bit_cast<float>(e << 23 | m);
                if (std::isnan(a))
                    continue;
                QCOMPARE(qs::ggml::detail::mxfp4Exponent(a), reference(a));
            }
        }
        QCOMPARE(qs::ggml::detail::mxfp4Exponent(0.0f), uint8_t(0));
        QCOMPARE(qs::ggml::detail::mxfp4Exponent(1.0f), uint8_t(125));
    }
};

QTEST_APPLESS_MAIN(TestGgmlVec)
#include "tst_ggml_vec.moc"
