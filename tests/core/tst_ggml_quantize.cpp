// ggml quantizers against ggml's own output on the reference tensors: the legacy types byte for byte,
// every other type (and every importance-weighted variant) byte for byte or with an RMSE no worse than
// 1.01 x ggml's. The figures are printed with qInfo so they can be recorded.
#include "core/model/dtype.h"
#include "core/quant/ggml.h"
#include "core/quant/ggml_search.h"
#include "core/util/error.h"
#include "ggml_reference.h"

#include <QTest>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

using namespace ggmlref;

namespace {

std::vector<unsigned char> quantizeAll(qs::DType type, const std::vector<float>& x, uint64_t rows,
                                       uint64_t cols, const float* importance = nullptr)
{
    std::vector<unsigned char> out(qs::dtypeByteSize(type, rows * cols).value());
    const uint64_t written = qs::ggml::quantize(type, x.data(), rows, cols, out.data(), importance);
    if (written != out.size())
        throw std::runtime_error("quantize wrote an unexpected size");
    return out;
}

std::vector<float> decodeAll(qs::DType type, const void* bytes, uint64_t n)
{
    std::vector<float> y(n);
    qs::ggml::decode(type, bytes, n, y.data());
    return y;
}

long firstByteMismatch(const std::vector<unsigned char>& ours, std::span<const std::byte> theirs)
{
    if (ours.size() != theirs.size())
        return 0;
    for (size_t i = 0; i < ours.size(); ++i)
        if (ours[i] != static_cast<unsigned char>(theirs[i]))
            return static_cast<long>(i);
    return -1;
}

} // namespace

class TestGgmlQuantize : public QObject {
    Q_OBJECT
private slots:
    void canQuantizeIsExact()
    {
        for (int i = 0; i < static_cast<int>(qs::DType::Count); ++i) {
            const auto t = static_cast<qs::DType>(i);
            // The same set both ways, so every quantized tensor can be decoded back.
            QVERIFY2(qs::ggml::canQuantize(t) == qs::ggml::canDecode(t), qs::dtypeName(t));
        }
        QVERIFY(qs::ggml::canQuantize(qs::DType::IQ4_XS));
        QVERIFY(!qs::ggml::canQuantize(qs::DType::IQ2_XXS));
    }

    // Without importance, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 (and F16 / BF16) must be ggml's bytes exactly.
    void legacyTypesMatchGgmlBytes()
    {
        const Reference ref;
        int checked = 0;
        for (const char* dist : kDistributions) {
            const auto x = ref.floats(std::string(dist) + ".f32");
            for (const char* type : {"f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0"}) {
                const std::string name = std::string(dist) + '.' + type;
                const auto& t = ref.tensor(name);
                const auto ours = quantizeAll(t.dtype, x, kRows, kCols);
                const long bad = firstByteMismatch(ours, ref.bytes(name));
                QVERIFY2(bad < 0, qPrintable(QStringLiteral("%1: first differing byte %2 of %3")
                                                 .arg(QString::fromStdString(name))
                                                 .arg(bad)
                                                 .arg(ours.size())));
                ++checked;
            }
        }
        QCOMPARE(checked, 35);
    }

    // Every other type without importance, and every importance-weighted variant (with D.imatrix):
    // same bytes as ggml, or an RMSE within 1% of ggml's.
    void errorNoWorseThanGgml()
    {
        const Reference ref;
        int checked = 0, identical = 0;
        auto check = [&](const std::string& dist, const char* type, bool imx) {
            const auto x = ref.floats(dist + ".f32");
            const auto importance = ref.floats(dist + ".imatrix");
            QCOMPARE(importance.size(), size_t(kCols));
            const std::string name = dist + '.' + type + (imx ? ".imx" : "");
            const auto& t = ref.tensor(name);
            const auto ours = quantizeAll(t.dtype, x, kRows, kCols, imx ? importance.data() : nullptr);
            const auto theirs = ref.bytes(name);
            const double ourRmse = rmse(x, decodeAll(t.dtype, ours.data(), kCount));
            const double ggmlRmse = rmse(x, decodeAll(t.dtype, theirs.data(), kCount));
            // Our decode of ggml's bytes reproduces ggml's own figure (bit-exactness is tst_ggml_decode's).
            QVERIFY2(std::abs(ggmlRmse - ref.tableRmse(name)) <= 1e-6 * ggmlRmse, name.c_str());
            const bool same = firstByteMismatch(ours, theirs) < 0;
            const double ratio = ourRmse / ggmlRmse;
            qInfo("%-28s rmse ours %.6e  ggml %.6e  ratio %.4f  bytes %s", name.c_str(), ourRmse, ggmlRmse,
                  ratio, same ? "identical" : "differ");
            QVERIFY2(
                same || ratio <= 1.01,
                qPrintable(QStringLiteral("%1: rmse ratio %2").arg(QString::fromStdString(name)).arg(ratio)));
            ++checked;
            identical += same;
        };
        for (const char* dist : kDistributions) {
            for (const char* type : {"q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "iq4_nl", "iq4_xs", "mxfp4"})
                check(dist, type, false);
            for (const char* type : kImxTypes)
                check(dist, type, true);
        }
        QCOMPARE(checked, 5 * (8 + 11));
        qInfo("%d of %d tensors byte-identical to ggml", identical, checked);
    }

    // ggml has no importance-weighted Q8_0 or MXFP4; importance must not change them.
    void importanceIgnoredWhereGgmlHasNone()
    {
        const Reference ref;
        const auto x = ref.floats("student_t3.f32");
        const auto importance = ref.floats("student_t3.imatrix");
        for (const qs::DType t : {qs::DType::Q8_0, qs::DType::MXFP4, qs::DType::F16, qs::DType::BF16}) {
            QCOMPARE(quantizeAll(t, x, kRows, kCols, importance.data()), quantizeAll(t, x, kRows, kCols));
        }
    }

    // Rows are independent: quantizing all rows at once equals quantizing them one by one.
    void rowsAreIndependent()
    {
        const Reference ref;
        const auto x = ref.floats("outlier_cols.f32");
        const auto importance = ref.floats("outlier_cols.imatrix");
        for (const qs::DType t : {qs::DType::Q4_0, qs::DType::Q3_K, qs::DType::IQ4_XS}) {
            const auto all = quantizeAll(t, x, kRows, kCols, importance.data());
            const uint64_t rowBytes = qs::dtypeByteSize(t, kCols).value();
            for (uint64_t r = 0; r < kRows; ++r) {
                const std::vector<float> row(x.begin() + r * kCols, x.begin() + (r + 1) * kCols);
                const auto one = quantizeAll(t, row, 1, kCols, importance.data());
                QVERIFY(std::memcmp(one.data(), all.data() + r * rowBytes, rowBytes) == 0);
            }
        }
    }

    // Zero rows decode to exact zeros; round-trip error stays within each format's step.
    void zerosAndRoundTripBounds()
    {
        const qs::DType types[] = {qs::DType::Q4_0, qs::DType::Q4_1, qs::DType::Q5_0,   qs::DType::Q5_1,
                                   qs::DType::Q8_0, qs::DType::Q2_K, qs::DType::Q3_K,   qs::DType::Q4_K,
                                   qs::DType::Q5_K, qs::DType::Q6_K, qs::DType::IQ4_NL, qs::DType::IQ4_XS,
                                   qs::DType::MXFP4};
        const std::vector<float> zeros(512, 0.0f);
        std::mt19937 rng(7);
        std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
        std::vector<float> x(512);
        for (float& v : x)
            v = uni(rng);
        for (const qs::DType t : types) {
            const auto z = decodeAll(t, quantizeAll(t, zeros, 2, 256).data(), 512);
            for (float v : z)
                QCOMPARE(v, 0.0f);
            // Uniform [-1, 1]: the worst error of a b-bit format is about 2 / 2^b; allow a factor 2.
            const auto y = decodeAll(t, quantizeAll(t, x, 2, 256).data(), 512);
            double maxErr = 0;
            for (size_t i = 0; i < x.size(); ++i)
                maxErr = std::max(maxErr, std::abs(static_cast<double>(x[i]) - y[i]));
            const double bits = t == qs::DType::Q8_0                                                     ? 8
                                : t == qs::DType::Q6_K                                                   ? 6
                                : (t == qs::DType::Q5_0 || t == qs::DType::Q5_1 || t == qs::DType::Q5_K) ? 5
                                : t == qs::DType::Q3_K                                                   ? 3
                                : t == qs::DType::Q2_K                                                   ? 2
                                                                                                         : 4;
            QVERIFY2(maxErr <= 4.0 / std::exp2(bits) + 1e-3,
                     qPrintable(QStringLiteral("%1: max error %2").arg(qs::dtypeName(t)).arg(maxErr)));
        }
    }

    // Hostile values (NaN, infinities, huge and tiny magnitudes) never crash and keep the output size.
    void nonFiniteInputDoesNotCrash()
    {
        std::vector<float> x(512, 1.0f);
        x[3] = std::numeric_limits<float>::quiet_NaN();
        x[40] = std::numeric_limits<float>::infinity();
        x[300] = -std::numeric_limits<float>::infinity();
        x[301] = 3e38f;
        x[302] = 1e-40f;
        std::vector<float> importance(256, 1.0f);
        importance[5] = std::numeric_limits<float>::quiet_NaN();
        for (int i = 0; i < static_cast<int>(qs::DType::Count); ++i) {
            const auto t = static_cast<qs::DType>(i);
            if (!qs::ggml::canQuantize(t))
                continue;
            for (const float* imp :
                 {static_cast<const float*>(nullptr), static_cast<const float*>(importance.data())}) {
                const auto q = quantizeAll(t, x, 2, 256, imp);
                QCOMPARE(q.size(), size_t(qs::dtypeByteSize(t, 512).value()));
                decodeAll(t, q.data(), 512);
            }
        }
    }

    // The batched scale search is bit-identical to the scalar one, group by group, including degenerate
    // groups (constant, all zero, all positive) that finish early.
    void batchedSearchMatchesScalar()
    {
        namespace d = qs::ggml::detail;
        std::mt19937 rng(3);
        std::normal_distribution<float> gauss(0.0f, 1.0f);
        for (int trial = 0; trial < 200; ++trial) {
            const int n = trial % 2 ? 16 : 32;
            constexpr int G = 8;
            std::vector<float> x(G * n), w(G * n);
            for (int i = 0; i < G * n; ++i) {
                x[i] = gauss(rng) * (trial % 5 == 0 ? 100.0f : 0.02f);
                w[i] = std::abs(gauss(rng)) + 0.01f;
            }
            std::fill_n(x.begin() + 1 * n, n, 0.25f); // constant positive
            std::fill_n(x.begin() + 2 * n, n, 0.0f);  // all zero
            for (int i = 3 * n; i < 4 * n; ++i)
                x[i] = std::abs(x[i]); // all positive
            x[5 * n] = -x[5 * n + 1];  // a tie of magnitudes
            for (const bool qkx3 : {false, true}) {
                const int nmax = trial % 3 == 0 ? 3 : trial % 3 == 1 ? 15 : 31;
                const float rmin = qkx3 ? -0.9f : -1.0f, rdelta = qkx3 ? 0.05f : 0.1f;
                const int nstep = qkx3 ? 36 : 20;
                const bool mad = !qkx3 && trial % 4 == 0;
                std::vector<uint8_t> Lb(G * n), Ls(G * n), aux(n);
                float scales[G], mins[G];
                d::makeQkxQuantsBatch<G>(qkx3, n, nmax, x.data(), w.data(), Lb.data(), scales, mins, rmin,
                                         rdelta, nstep, mad);
                for (int g = 0; g < G; ++g) {
                    float negMin;
                    const auto fn = qkx3 ? d::makeQkx3Quants : d::makeQkx2Quants;
                    const float scale = fn(n, nmax, x.data() + g * n, w.data() + g * n, Ls.data() + g * n,
                                           &negMin, aux.data(), rmin, rdelta, nstep, mad);
                    QCOMPARE(std::bit_cast<uint32_t>(scales[g]), std::bit_cast<uint32_t>(scale));
                    QCOMPARE(std::bit_cast<uint32_t>(mins[g]), std::bit_cast<uint32_t>(negMin));
                }
                QCOMPARE(Lb, Ls);
            }
            // The symmetric search (makeQxQuants, weighted least squares).
            const int nmax = trial % 3 == 0 ? 4 : trial % 3 == 1 ? 8 : 32;
            std::vector<int8_t> Qb(G * n), Qs(G * n);
            float scales[G];
            d::makeQxQuantsBatch<G>(n, nmax, x.data(), w.data(), Qb.data(), scales);
            for (int g = 0; g < G; ++g) {
                const float scale =
                    d::makeQxQuants(n, nmax, x.data() + g * n, Qs.data() + g * n, 1, w.data() + g * n);
                QCOMPARE(std::bit_cast<uint32_t>(scales[g]), std::bit_cast<uint32_t>(scale));
            }
            QCOMPARE(Qb, Qs);
            // The IQ4 scale search (blocks of 32 only).
            if (n == 32) {
                float batch[G];
                d::iq4ScalesBatch8(x.data(), w.data(), batch);
                for (int g = 0; g < G; ++g)
                    QCOMPARE(std::bit_cast<uint32_t>(batch[g]),
                             std::bit_cast<uint32_t>(d::iq4Scale(x.data() + g * n, w.data() + g * n)));
            }
        }
    }

    // ggml's Q8_0 rounds half away from zero (roundf), unlike the K-quants' nearest-even.
    void q8_0RoundsHalfAwayFromZero()
    {
        std::vector<float> x(32, 0.0f);
        const float values[] = {127.0f, 2.5f,   -2.5f,   0.5f,        -0.5f,
                                1.5f,   126.5f, -126.5f, 0.49999997f, -127.0f};
        const int expected[] = {127, 3, -3, 1, -1, 2, 127, -127, 0, -127};
        std::copy(std::begin(values), std::end(values), x.begin());
        const auto q = quantizeAll(qs::DType::Q8_0, x, 1, 32);
        QCOMPARE(q[0], uint8_t(0x00)); // d = 127 / 127 = 1.0 = 0x3C00
        QCOMPARE(q[1], uint8_t(0x3C));
        for (int j = 0; j < 10; ++j)
            QCOMPARE(static_cast<int>(static_cast<int8_t>(q[2 + j])), expected[j]);
    }

    // The F16 / BF16 row conversions agree with the scalar ones on every kind of float.
    void floatRowsMatchScalarConversions()
    {
        std::mt19937 rng(1);
        std::vector<float> x(1 << 20);
        for (size_t i = 0; i < x.size(); ++i) {
            uint32_t bits = static_cast<uint32_t>(rng());
            if (i % 2) // half of them in and around the half range, where rounding matters
                bits = (bits & 0x80001FFFu) | ((0x33000000u + (bits & 0x0FFFE000u)) & 0x7FFFE000u);
            std::memcpy(&x[i], &bits, 4);
        }
        const float specials[] = {0.0f,
                                  -0.0f,
                                  65504.0f,
                                  65519.99f,
                                  65520.0f,
                                  6.1035156e-05f,
                                  6.1035152e-05f,
                                  5.9604645e-08f,
                                  1.0f + std::ldexp(1.0f, -11),
                                  1.0f + 3 * std::ldexp(1.0f, -11),
                                  std::numeric_limits<float>::infinity(),
                                  std::numeric_limits<float>::quiet_NaN()};
        std::copy(std::begin(specials), std::end(specials), x.begin());
        const auto f16 = quantizeAll(qs::DType::F16, x, 1, x.size());
        const auto bf16 = quantizeAll(qs::DType::BF16, x, 1, x.size());
        for (size_t i = 0; i < x.size(); ++i) {
            uint16_t h, b;
            std::memcpy(&h, f16.data() + 2 * i, 2);
            std::memcpy(&b, bf16.data() + 2 * i, 2);
            if (h != qs::floatToHalf(x[i]) || b != qs::floatToBf16(x[i]))
                QFAIL(qPrintable(QStringLiteral("value %1 (index %2)").arg(x[i], 0, 'g', 9).arg(i)));
        }
    }

    void rejectsBadShapes()
    {
        std::vector<float> x(300, 0.5f);
        std::vector<unsigned char> out(1024);
        QVERIFY_THROWS_EXCEPTION(qs::Error,
                                 qs::ggml::quantize(qs::DType::Q4_K, x.data(), 1, 128, out.data()));
        QVERIFY_THROWS_EXCEPTION(qs::Error, qs::ggml::quantize(qs::DType::Q8_0, x.data(), 1, 30, out.data()));
        QVERIFY_THROWS_EXCEPTION(qs::Error, qs::ggml::quantize(qs::DType::Q8_0, x.data(), 1, 0, out.data()));
        QVERIFY_THROWS_EXCEPTION(qs::Error,
                                 qs::ggml::quantize(qs::DType::IQ2_XS, x.data(), 1, 256, out.data()));
        QCOMPARE(qs::ggml::quantize(qs::DType::Q8_0, x.data(), 0, 32, out.data()), uint64_t(0));
    }
};

QTEST_APPLESS_MAIN(TestGgmlQuantize)
#include "tst_ggml_quantize.moc"
