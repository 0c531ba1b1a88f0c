// ggml block decoding: bit-exact against ggml's own dequantization of every reference tensor, plus
// hand-built blocks whose values are worked out from the published layouts.
#include "core/model/dtype.h"
#include "core/quant/ggml.h"
#include "core/util/error.h"
#include "ggml_reference.h"

#include <QTest>
#include <cmath>
#include <cstring>
#include <vector>

using namespace ggmlref;

namespace {

// Index of the first value whose bits differ, -1 when all agree.
long firstMismatch(const std::vector<float>& a, const std::vector<float>& b)
{
    for (size_t i = 0; i < a.size(); ++i)
        if (std::memcmp(&a[i], &b[i], 4) != 0)
            return static_cast<long>(i);
    return -1;
}

std::vector<float> decodeBytes(qs::DType type, std::span<const std::byte> raw, uint64_t n)
{
    std::vector<float> out(n);
    qs::ggml::decode(type, raw.data(), n, out.data());
    return out;
}

} // namespace

class TestGgmlDecode : public QObject {
    Q_OBJECT
private slots:
    void canDecodeIsExact()
    {
        const qs::DType expected[] = {
            qs::DType::F32,  qs::DType::F16,    qs::DType::BF16,   qs::DType::Q4_0,
            qs::DType::Q4_1, qs::DType::Q5_0,   qs::DType::Q5_1,   qs::DType::Q8_0,
            qs::DType::Q2_K, qs::DType::Q3_K,   qs::DType::Q4_K,   qs::DType::Q5_K,
            qs::DType::Q6_K, qs::DType::IQ4_NL, qs::DType::IQ4_XS, qs::DType::MXFP4};
        for (int i = 0; i < static_cast<int>(qs::DType::Count); ++i) {
            const auto t = static_cast<qs::DType>(i);
            const bool want = std::find(std::begin(expected), std::end(expected), t) != std::end(expected);
            QVERIFY2(qs::ggml::canDecode(t) == want, qs::dtypeName(t));
            if (qs::dtypeInfo(t).blockElements > 1) // block types take decodability from us
                QVERIFY2(qs::dtypeInfo(t).decodable == want, qs::dtypeName(t));
        }
    }

    // Every D.<type> decodes to exactly the floats of D.<type>.deq (ggml's to_float); the importance
    // variants D.<type>.imx (no .deq in the file) reproduce the RMSE ggml measured on its own decode.
    void referenceTensors()
    {
        const Reference ref;
        int exact = 0, imx = 0;
        for (const char* dist : kDistributions) {
            const auto input = ref.floats(std::string(dist) + ".f32");
            QCOMPARE(input.size(), size_t(kCount));
            for (const char* type : kTypes) {
                const std::string name = std::string(dist) + '.' + type;
                const auto& t = ref.tensor(name);
                QVERIFY2(qs::ggml::canDecode(t.dtype), name.c_str());
                const auto ours = decodeBytes(t.dtype, ref.bytes(name), kCount);
                const auto theirs = ref.floats(name + ".deq");
                const long bad = firstMismatch(ours, theirs);
                QVERIFY2(bad < 0, qPrintable(QStringLiteral("%1: first mismatch at %2: %3 vs ggml %4")
                                                 .arg(QString::fromStdString(name))
                                                 .arg(bad)
                                                 .arg(ours[std::max(bad, 0L)], 0, 'g', 9)
                                                 .arg(theirs[std::max(bad, 0L)], 0, 'g', 9)));
                // The same bytes through the model's generic decode path.
                std::vector<float> viaModel(kCount);
                ref.model().decode(t, 0, kCount, viaModel.data());
                QCOMPARE(firstMismatch(viaModel, theirs), -1L);
                const double table = ref.tableRmse(name);
                QVERIFY2(std::abs(rmse(input, ours) - table) <= 1e-6 * table, name.c_str());
                ++exact;
            }
            for (const char* type : kImxTypes) {
                const std::string name = std::string(dist) + '.' + type + ".imx";
                const auto& t = ref.tensor(name);
                const auto ours = decodeBytes(t.dtype, ref.bytes(name), kCount);
                const double table = ref.tableRmse(name);
                const double ourRmse = rmse(input, ours);
                // The table prints 7 significant digits.
                QVERIFY2(std::abs(ourRmse - table) <= 1e-6 * table,
                         qPrintable(QStringLiteral("%1: rmse %2 vs ggml %3")
                                        .arg(QString::fromStdString(name))
                                        .arg(ourRmse, 0, 'e', 7)
                                        .arg(table, 0, 'e', 7)));
                ++imx;
            }
        }
        QCOMPARE(exact, 75);
        QCOMPARE(imx, 55);
    }

    void handQ4_0()
    {
        unsigned char b[18] = {0x00, 0x38}; // d = 0.5
        for (int j = 0; j < 16; ++j)
            b[2 + j] = static_cast<unsigned char>(j | ((15 - j) << 4));
        float y[32];
        qs::ggml::decode(qs::DType::Q4_0, b, 32, y);
        for (int j = 0; j < 16; ++j) {
            QCOMPARE(y[j], (j - 8) * 0.5f);
            QCOMPARE(y[j + 16], (7 - j) * 0.5f);
        }
    }

    void handQ4_1AndQ5_0()
    {
        unsigned char b[20] = {0x00, 0x3C, 0x00, 0xC0}; // d = 1, m = -2
        for (int j = 0; j < 16; ++j)
            b[4 + j] = static_cast<unsigned char>(j | (j << 4));
        float y[32];
        qs::ggml::decode(qs::DType::Q4_1, b, 32, y);
        for (int j = 0; j < 16; ++j) {
            QCOMPARE(y[j], j - 2.0f);
            QCOMPARE(y[j + 16], j - 2.0f);
        }
        // Q5_0: the fifth bit of value j is bit j of qh; low values all 31, high values all 0.
        unsigned char c[22] = {0x00, 0x3C, 0xFF, 0xFF, 0x00, 0x00};
        for (int j = 0; j < 16; ++j)
            c[6 + j] = 0x0F;
        qs::ggml::decode(qs::DType::Q5_0, c, 32, y);
        for (int j = 0; j < 16; ++j) {
            QCOMPARE(y[j], 15.0f);
            QCOMPARE(y[j + 16], -16.0f);
        }
    }

    void handQ8_0()
    {
        unsigned char b[34] = {0x00, 0x34}; // d = 0.25
        for (int j = 0; j < 32; ++j)
            b[2 + j] = static_cast<unsigned char>(static_cast<int8_t>(j - 16));
        float y[32];
        qs::ggml::decode(qs::DType::Q8_0, b, 32, y);
        for (int j = 0; j < 32; ++j)
            QCOMPARE(y[j], (j - 16) * 0.25f);
    }

    void handQ4_K()
    {
        // d = 1, dmin = 0.5; sub-block s has scale s+1 and min s%4, except sub-block 4 whose 6-bit scale
        // is 37 (low nibble 5 in byte 8, high bits 0b10 in bits 6-7 of byte 0). All low nibbles 1, high 3.
        unsigned char b[144] = {0x00, 0x3C, 0x00, 0x38};
        unsigned char* sc = b + 4;
        for (int j = 0; j < 4; ++j) {
            sc[j] = static_cast<unsigned char>(j + 1);
            sc[j + 4] = static_cast<unsigned char>(j);
            sc[j + 8] = static_cast<unsigned char>((5 + j) | (j << 4));
        }
        sc[0] |= 2 << 6;
        std::memset(b + 16, 0x31, 128);
        float y[256];
        qs::ggml::decode(qs::DType::Q4_K, b, 256, y);
        for (int k = 0; k < 256; ++k) {
            const int s = k / 32;
            const int scale = s == 4 ? 37 : s + 1;
            const int q = s % 2 == 0 ? 1 : 3;
            QCOMPARE(y[k], static_cast<float>(scale * q) - 0.5f * static_cast<float>(s % 4));
        }
    }

    void handQ6_K()
    {
        // All 6-bit values 0 (q = -32) except value 0 (ql nibble 15 -> q = -17); scales 1..16, d = 1.
        unsigned char b[210] = {};
        b[0] = 0x0F;
        for (int i = 0; i < 16; ++i)
            b[192 + i] = static_cast<unsigned char>(i + 1);
        b[208] = 0x00;
        b[209] = 0x3C;
        float y[256];
        qs::ggml::decode(qs::DType::Q6_K, b, 256, y);
        for (int k = 0; k < 256; ++k) {
            const int n = k / 128, r = k % 128, g = r / 32, l = r % 32;
            const int scale = 8 * n + l / 16 + 2 * g + 1;
            const int q = k == 0 ? -17 : -32;
            QCOMPARE(y[k], static_cast<float>(scale * q));
        }
    }

    void handIQ4_NL()
    {
        const int levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
        unsigned char b[18] = {0x00, 0x3C};
        for (int j = 0; j < 16; ++j)
            b[2 + j] = static_cast<unsigned char>(j | ((15 - j) << 4));
        float y[32];
        qs::ggml::decode(qs::DType::IQ4_NL, b, 32, y);
        for (int j = 0; j < 16; ++j) {
            QCOMPARE(y[j], static_cast<float>(levels[j]));
            QCOMPARE(y[j + 16], static_cast<float>(levels[15 - j]));
        }
    }

    void handMXFP4()
    {
        // E2M1: sign bit 3, then magnitudes 0, 0.5, 1, 1.5, 2, 3, 4, 6. The E8M0 exponent e scales by
        // 2^(e-127); e = 0 and 1 give subnormal float scales.
        const float e2m1[8] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};
        for (const int e : {0, 1, 2, 100, 127, 128, 254}) {
            unsigned char b[17] = {static_cast<unsigned char>(e)};
            for (int j = 0; j < 16; ++j)
                b[1 + j] = static_cast<unsigned char>(j | ((15 - j) << 4));
            float y[32];
            qs::ggml::decode(qs::DType::MXFP4, b, 32, y);
            for (int j = 0; j < 16; ++j) {
                const float lo = (j & 8 ? -1.0f : 1.0f) * e2m1[j & 7];
                const float hi = ((15 - j) & 8 ? -1.0f : 1.0f) * e2m1[(15 - j) & 7];
                QCOMPARE(y[j], std::ldexp(lo, e - 127));
                QCOMPARE(y[j + 16], std::ldexp(hi, e - 127));
            }
        }
    }

    void rejectsPartialBlocksAndUnknownTypes()
    {
        std::vector<unsigned char> b(256);
        std::vector<float> y(256);
        QVERIFY_THROWS_EXCEPTION(qs::Error, qs::ggml::decode(qs::DType::Q4_K, b.data(), 32, y.data()));
        QVERIFY_THROWS_EXCEPTION(qs::Error, qs::ggml::decode(qs::DType::Q4_0, b.data(), 33, y.data()));
        QVERIFY_THROWS_EXCEPTION(qs::Error, qs::ggml::decode(qs::DType::IQ2_XXS, b.data(), 256, y.data()));
        QVERIFY_THROWS_EXCEPTION(qs::Error, qs::decodeToFloat(qs::DType::TQ1_0, b.data(), 256, y.data()));
        // Zero values is a valid (empty) request.
        qs::ggml::decode(qs::DType::Q6_K, b.data(), 0, y.data());
    }
};

QTEST_APPLESS_MAIN(TestGgmlDecode)
#include "tst_ggml_decode.moc"
