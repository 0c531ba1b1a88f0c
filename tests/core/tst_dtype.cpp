// Plain dtype conversions against hand-computed values.
#include "core/model/dtype.h"

#include <QTest>

#include <cmath>
#include <cstring>

class TestDType : public QObject {
    Q_OBJECT
private slots:
    void sizes()
    {
        QCOMPARE(qs::dtypeByteSize(qs::DType::Q4_K, 512).value(), 288u);
        QVERIFY(!qs::dtypeByteSize(qs::DType::Q4_K, 100).has_value());
        QCOMPARE(qs::dtypeBitsPerWeight(qs::DType::Q6_K), 6.5625);
        QCOMPARE(qs::dtypeBitsPerWeight(qs::DType::BF16), 16.0);
        QCOMPARE(*qs::dtypeFromName("bf16"), qs::DType::BF16);
        QCOMPARE(*qs::dtypeFromGgmlType(12), qs::DType::Q4_K);
        QCOMPARE(*qs::dtypeFromGgmlType(39), qs::DType::MXFP4);
    }
    // Found by fuzz_h5probe_protocol (UBSan): an empty tensor has no data and its buffer no storage, and
    // decoding it passed null pointers to memcpy. Every decodable type takes n = 0 with null pointers (the
    // sanitizer suite, `make asan`, fails here if one does not).
    void emptyDecodeTouchesNothing()
    {
        int decodable = 0;
        for (int t = 0; t < int(qs::DType::Count); ++t) {
            const auto type = qs::DType(t);
            if (!qs::dtypeInfo(type).decodable)
                continue;
            qs::decodeToFloat(type, nullptr, 0, nullptr);
            ++decodable;
        }
        QVERIFY2(decodable >= 30, qPrintable(QString::number(decodable)));
    }
    void halfRoundTrip()
    {
        QCOMPARE(qs::halfToFloat(0x3C00), 1.0f);
        QCOMPARE(qs::halfToFloat(0xC000), -2.0f);
        QCOMPARE(qs::halfToFloat(0x0001), std::ldexp(1.0f, -24)); // smallest subnormal
        QCOMPARE(qs::halfToFloat(0x7BFF), 65504.0f);
        QVERIFY(std::isinf(qs::halfToFloat(0x7C00)));
        // Every half survives half -> float -> half.
        for (uint32_t h = 0; h < 0x10000; ++h) {
            const float f = qs::halfToFloat(static_cast<uint16_t>(h));
            if (std::isnan(f))
                continue;
            QCOMPARE(qs::floatToHalf(f), static_cast<uint16_t>(h));
        }
        QCOMPARE(qs::floatToHalf(1.0f + std::ldexp(1.0f, -11)), uint16_t(0x3C00)); // tie to even
        QCOMPARE(qs::floatToHalf(1e6f), uint16_t(0x7C00));
    }
    void bf16()
    {
        QCOMPARE(qs::floatToBf16(1.0f), uint16_t(0x3F80));
        QCOMPARE(qs::bf16ToFloat(0x4049), 3.140625f);
        QCOMPARE(qs::floatToBf16(3.14159265f), uint16_t(0x4049));
    }
    void fp8()
    {
        const unsigned char e4m3[] = {0x38, 0x7E, 0x01, 0xB8}; // 1.0, 448, 2^-9, -1.0
        float out[4];
        qs::decodeToFloat(qs::DType::F8_E4M3, e4m3, 4, out);
        QCOMPARE(out[0], 1.0f);
        QCOMPARE(out[1], 448.0f);
        QCOMPARE(out[2], std::ldexp(1.0f, -9));
        QCOMPARE(out[3], -1.0f);
        const unsigned char e5m2[] = {0x3C, 0x7B}; // 1.0, 57344
        qs::decodeToFloat(qs::DType::F8_E5M2, e5m2, 2, out);
        QCOMPARE(out[0], 1.0f);
        QCOMPARE(out[1], 57344.0f);
    }
};

QTEST_APPLESS_MAIN(TestDType)
#include "tst_dtype.moc"
