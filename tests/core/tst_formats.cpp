// Quantization formats: exact storage sizes (hand-computed and against a real GGUF), RTN bit-exact with
// the original GPTQ quantizer, FP8 / NF4 against hand-computed examples, registry names.
#include "core/model/dtype.h"
#include "core/quant/format.h"
#include "core/quant/fp8.h"
#include "core/quant/ggml.h"
#include "core/quant/int_quant.h"
#include "core/quant/nf4.h"

#include <QFile>
#include <QTest>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <random>

namespace {

std::vector<float> readF32(const QString& path)
{
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly))
        return {};
    const QByteArray bytes = f.readAll();
    std::vector<float> v(static_cast<size_t>(bytes.size()) / 4);
    std::memcpy(v.data(), bytes.constData(), v.size() * 4);
    return v;
}

// A deliberately small, independent GGUF reader (tensor names, ggml types, shapes, data offsets) so that the
// size check does not go through the project's own loader or dtype table.
struct GgufTensor {
    std::string name;
    std::vector<uint64_t> ne;
    uint32_t type = 0;
    uint64_t offset = 0;
    uint64_t size = 0; // distance to the next tensor's data (or the end of the file)
};

struct GgufFile {
    QByteArray bytes;
    std::vector<GgufTensor> tensors;
    uint64_t dataStart = 0;
    const GgufTensor* find(const std::string& n) const
    {
        for (const auto& t : tensors)
            if (t.name == n)
                return &t;
        return nullptr;
    }
    const float* f32(const GgufTensor& t) const
    {
        return reinterpret_cast<const float*>(bytes.constData() + dataStart + t.offset);
    }
    const char* raw(const GgufTensor& t) const { return bytes.constData() + dataStart + t.offset; }
};

GgufFile readGguf(const QString& path)
{
    GgufFile g;
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly))
        return g;
    g.bytes = f.readAll();
    size_t o = 4;
    auto rd = [&](auto& v) {
        std::memcpy(&v, g.bytes.constData() + o, sizeof(v));
        o += sizeof(v);
    };
    auto str = [&] {
        uint64_t n;
        rd(n);
        std::string s(g.bytes.constData() + o, n);
        o += n;
        return s;
    };
    uint32_t version;
    uint64_t nTensors, nKv;
    rd(version);
    rd(nTensors);
    rd(nKv);
    uint64_t alignment = 32;
    std::function<void(uint32_t)> skip = [&](uint32_t type) {
        static const int sizes[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
        if (type == 8) {
            str();
        } else if (type == 9) {
            uint32_t at;
            uint64_t n;
            rd(at);
            rd(n);
            for (uint64_t i = 0; i < n; ++i)
                skip(at);
        } else {
            o += sizes[type];
        }
    };
    for (uint64_t i = 0; i < nKv; ++i) {
        const std::string key = str();
        uint32_t type;
        rd(type);
        if (key == "general.alignment" && type == 4) {
            uint32_t a;
            rd(a);
            alignment = a;
        } else {
            skip(type);
        }
    }
    for (uint64_t i = 0; i < nTensors; ++i) {
        GgufTensor t;
        t.name = str();
        uint32_t nd;
        rd(nd);
        t.ne.resize(nd);
        for (auto& d : t.ne)
            rd(d);
        rd(t.type);
        rd(t.offset);
        g.tensors.push_back(t);
    }
    g.dataStart = (o + alignment - 1) / alignment * alignment;
    std::vector<GgufTensor*> sorted;
    for (auto& t : g.tensors)
        sorted.push_back(&t);
    std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
    for (size_t i = 0; i < sorted.size(); ++i)
        sorted[i]->size = (i + 1 < sorted.size() ? sorted[i + 1]->offset
                                                 : static_cast<uint64_t>(g.bytes.size()) - g.dataStart) -
                          sorted[i]->offset;
    return g;
}

std::shared_ptr<const qs::QuantFormat> fmt(const char* name)
{
    auto f = qs::findFormat(name);
    if (!f)
        qFatal("no format %s", name);
    return f;
}

} // namespace

class TestFormats : public QObject {
    Q_OBJECT
private slots:
    void registry()
    {
        QCOMPARE(fmt("int4")->name(), std::string("INT4-g128-asym"));
        QCOMPARE(fmt("INT8")->name(), std::string("INT8-ch-sym"));
        QCOMPARE(fmt("q4_k")->name(), std::string("Q4_K"));
        QCOMPARE(fmt("iq4_xs")->name(), std::string("IQ4_XS"));
        QCOMPARE(fmt("int3_g64_sym")->name(), std::string("INT3-g64-sym"));
        QCOMPARE(fmt("fp8")->name(), std::string("FP8-E4M3"));
        QCOMPARE(fmt("fp8-e5m2-ch")->name(), std::string("FP8-E5M2-ch"));
        QCOMPARE(fmt("nf4")->name(), std::string("NF4"));
        QCOMPARE(fmt("mxfp4")->traits().kind, qs::FormatKind::Mx);
        QVERIFY(!qs::findFormat("INT9-g128-asym"));
        QVERIFY(!qs::findFormat("Q4_2"));
        QVERIFY(!qs::findFormat(""));
        const auto names = qs::allFormatNames();
        // 2 float + 13 ggml + 7 bits x 5 granularities x 2 + 4 fp8 + nf4
        QCOMPARE(names.size(), size_t(2 + 13 + 70 + 4 + 1));
        for (const auto& n : names)
            QCOMPARE(qs::findFormat(n)->name(), n);
        for (const auto& n : qs::defaultSensitivityFormats())
            QVERIFY2(std::find(names.begin(), names.end(), n) != names.end(), n.c_str());
        const auto& t = fmt("INT3-g64-sym")->traits();
        QCOMPARE(t.bits, 3);
        QCOMPARE(t.groupSize, 64);
        QVERIFY(t.symmetric);
        QCOMPARE(fmt("INT4-ch-asym")->traits().groupSize, -1);
        QCOMPARE(fmt("INT4-tensor-asym")->traits().groupSize, 0);
        QCOMPARE(*fmt("Q6_K")->traits().storage, qs::DType::Q6_K);
    }

    // GPTQ checkpoint sizes, computed by hand from the tensor shapes AutoGPTQ writes.
    void intSizes()
    {
        // 4096 x 4096, 4 bits, g128: qweight int32 [512, 4096] = 8388608; qzeros int32 [32, 512] = 65536;
        // scales fp16 [32, 4096] = 262144; g_idx int32 [4096] = 16384.
        QCOMPARE(*fmt("INT4-g128-asym")->storedBytes(4096, 4096), uint64_t(8732672));
        QCOMPARE(*fmt("INT4-g128-sym")->storedBytes(4096, 4096), uint64_t(8732672)); // qzeros stored anyway
        QCOMPARE(*qs::formatBitsPerWeight(*fmt("INT4-g128-asym"), 4096, 4096),
                 8732672.0 * 8 / (4096.0 * 4096));
        // per channel: one group; qzeros [1, 512] = 2048, scales [1, 4096] = 8192.
        QCOMPARE(*fmt("INT4-ch-sym")->storedBytes(4096, 4096), uint64_t(8388608 + 2048 + 8192 + 16384));
        // Llama-2-7B down_proj seen as rows = 4096 out, cols = 11008 in, 3 bits g64:
        // qweight ceil(11008*3/32) = 1032 rows x 4096 x 4 = 16908288; G = 172; qzeros [172, 384] x 4 =
        // 264192; scales [172, 4096] x 2 = 1409024; g_idx 11008 x 4 = 44032.
        QCOMPARE(*fmt("INT3-g64-asym")->storedBytes(4096, 11008),
                 uint64_t(16908288 + 264192 + 1409024 + 44032));
        // 8 bits per channel, 11008 x 4096: qweight [1024, 11008] x 4 = 45088768; qzeros [1, 2752] x 4 =
        // 11008; scales 22016; g_idx 16384.
        QCOMPARE(*fmt("INT8-ch-sym")->storedBytes(11008, 4096), uint64_t(45088768 + 11008 + 22016 + 16384));
        // Partial last group and padded packing: 64 x 172, 4 bits, g128 -> G = 2; qweight ceil(688/32) = 22
        // words x 64 x 4 = 5632; qzeros 2 x ceil(256/32) x 4 = 64; scales 2 x 64 x 2 = 256; g_idx 688.
        QCOMPARE(*fmt("INT4-g128-asym")->storedBytes(64, 172), uint64_t(5632 + 64 + 256 + 688));
        // Per tensor: qweight + one fp16 scale + one int32 zero word.
        QCOMPARE(*fmt("INT8-tensor-sym")->storedBytes(64, 64), uint64_t(4096 + 6));
        // 32 x 32, 2 bits: qweight [2, 32] words, qzeros [1, 2] words, scales [1, 32], g_idx [32].
        QCOMPARE(*fmt("INT2-g32-asym")->storedBytes(32, 32), uint64_t(2 * 32 * 4 + 2 * 4 + 32 * 2 + 32 * 4));
        QVERIFY(!fmt("INT4-g128-asym")->storedBytes(0, 4096));
        QVERIFY(!fmt("INT4-g128-asym")->storedBytes(uint64_t(1) << 62, uint64_t(1) << 62)); // overflow
    }

    void otherSizes()
    {
        QCOMPARE(*fmt("FP8-E4M3")->storedBytes(4096, 4096), uint64_t(16777216 + 4));
        QCOMPARE(*fmt("FP8-E5M2-ch")->storedBytes(4096, 11008), uint64_t(45088768 + 4096 * 4));
        QCOMPARE(*fmt("NF4")->storedBytes(4096, 4096), uint64_t(8388608 + 262144 * 4));
        QCOMPARE(*qs::formatBitsPerWeight(*fmt("NF4"), 4096, 4096), 4.5);
        QCOMPARE(*fmt("NF4")->storedBytes(1, 5), uint64_t(3 + 4));
        QCOMPARE(*fmt("NF4")->storedBytes(3, 43), uint64_t(65 + 3 * 4)); // 129 values: 3 blocks
        QCOMPARE(*fmt("BF16")->storedBytes(3, 5), uint64_t(30));
        QCOMPARE(*fmt("Q4_K")->storedBytes(4096, 4096), uint64_t(4096 * 16 * 144));
        QCOMPARE(*fmt("Q8_0")->storedBytes(2, 64), uint64_t(4 * 34));
        QVERIFY(!fmt("Q4_K")->supports(64, 64));
        QVERIFY(!fmt("Q4_K")->storedBytes(64, 64));
        QVERIFY(fmt("Q4_0")->supports(64, 64));
        QCOMPARE(*qs::formatBitsPerWeight(*fmt("MXFP4"), 4, 64), 4.25);
    }

    // Every quantized tensor of the ggml-made reference file: our stored size equals the bytes ggml wrote.
    void sizesMatchRealGguf()
    {
        const GgufFile g = readGguf(QStringLiteral(QS_TEST_DATA "/reference/ggml-quants.gguf"));
        QVERIFY(g.tensors.size() > 100);
        uint64_t ours = 0, real = 0;
        int checked = 0;
        std::map<std::string, int> perType;
        for (const auto& t : g.tensors) {
            if (t.type == 0) // F32 inputs, dequantizations, importance vectors
                continue;
            auto dtype = qs::dtypeFromGgmlType(t.type);
            QVERIFY(dtype);
            auto format = qs::findFormat(qs::dtypeName(*dtype));
            QVERIFY2(format, qs::dtypeName(*dtype));
            QCOMPARE(t.ne.size(), size_t(2));
            const uint64_t cols = t.ne[0], rows = t.ne[1];
            const auto bytes = format->storedBytes(rows, cols);
            QVERIFY(bytes);
            // The data of the next tensor starts at the next 32-byte boundary.
            QVERIFY2((*bytes + 31) / 32 * 32 == t.size, t.name.c_str());
            QVERIFY(*bytes <= t.size);
            ours += *bytes;
            real += t.size;
            ++checked;
            ++perType[format->name()];
        }
        QCOMPARE(ours, real); // every size here is a multiple of 32, so the sums agree exactly
        QCOMPARE(perType.size(), size_t(15)); // f16, bf16 and the 13 ggml block types
        QVERIFY(checked >= 5 * 15);
    }

    // RTN bit-exact with IST-DASLab/gptq's quantizer: Q_rtn of stories260K blk.4.ffn_down (64 x 172, so
    // g128 has a partial last group) from gptq-reference.h5, for the file's five configs.
    void gptqRtnReference_data()
    {
        QTest::addColumn<QString>("config");
        QTest::addColumn<int>("bits");
        QTest::addColumn<int>("group");
        QTest::addColumn<bool>("sym");
        QTest::newRow("b4_g128_asym") << "b4_g128_asym" << 4 << 128 << false;
        QTest::newRow("b4_g-1_sym") << "b4_g-1_sym" << 4 << -1 << true;
        QTest::newRow("b3_g64_asym") << "b3_g64_asym_actorder" << 3 << 64 << false;
        QTest::newRow("b2_g32_asym") << "b2_g32_asym" << 2 << 32 << false;
        QTest::newRow("b8_g-1_sym") << "b8_g-1_sym" << 8 << -1 << true;
    }
    void gptqRtnReference()
    {
        QFETCH(QString, config);
        QFETCH(int, bits);
        QFETCH(int, group);
        QFETCH(bool, sym);
        const QString dir = QStringLiteral(QS_TEST_DATA "/reference/gptq-rtn/");
        const auto w = readF32(dir + QStringLiteral("W.f32"));
        const auto expected = readF32(dir + config + QStringLiteral(".Q_rtn.f32"));
        QCOMPARE(w.size(), size_t(64 * 172));
        QCOMPARE(expected.size(), w.size());
        const std::string name = "INT" + std::to_string(bits) + "-" +
                                 (group > 0 ? "g" + std::to_string(group) : std::string("ch")) +
                                 (sym ? "-sym" : "-asym");
        std::vector<float> out(w.size());
        fmt(name.c_str())->roundTrip(w.data(), 64, 172, out.data());
        for (size_t i = 0; i < w.size(); ++i)
            if (out[i] != expected[i])
                QFAIL(qPrintable(QStringLiteral("value %1: %2 != %3").arg(i).arg(out[i]).arg(expected[i])));
    }

    void intHandExamples()
    {
        // 4-bit asymmetric per tensor on {-1, 0, 0.25, 2}: scale = 3/15 = 0.2, zero = round(1/0.2) = 5.
        const float x[4] = {-1.0f, 0.0f, 0.25f, 2.0f};
        float y[4];
        fmt("INT4-tensor-asym")->roundTrip(x, 1, 4, y);
        const float s = 3.0f / 15.0f;
        QCOMPARE(y[0], s * -5.0f);
        QCOMPARE(y[1], 0.0f);
        QCOMPARE(y[2], s * 1.0f); // 0.25 / 0.2 = 1.25 -> 1
        QCOMPARE(y[3], s * 10.0f);
        // 4-bit symmetric per row: scale = 2 * 1 / 15, grid s * {-8..7}; row 2 is all positive, where GPTQ
        // keeps xmin = 0: scale = 0.9 / 15, zero 8, so 0.9 clips to 7 steps.
        const float x2[8] = {-1.0f, 0.3f, 0.5f, 0.9f, 0.9f, 0.3f, 0.0f, 0.45f};
        float y2[8];
        fmt("INT4-ch-sym")->roundTrip(x2, 2, 4, y2);
        const float s1 = 2.0f / 15.0f, s2 = 0.9f / 15.0f;
        QCOMPARE(y2[0], s1 * -7.0f); // -7.4999996 rounds to -7
        QCOMPARE(y2[1], s1 * 2.0f);  // 2.25
        QCOMPARE(y2[2], s1 * 4.0f);  // 3.75
        QCOMPARE(y2[3], s1 * 7.0f);  // 6.75
        QCOMPARE(y2[4], s2 * 7.0f);  // 15 -> clipped to 7
        QCOMPARE(y2[5], s2 * 5.0f);  // 5
        QCOMPARE(y2[6], 0.0f);
        QCOMPARE(y2[7], s2 * 7.0f); // 7.5 -> 8 (ties to even) -> clipped to 7
        // Groups: 2 bits, g32, asymmetric; the second group has its own range.
        std::vector<float> g(64);
        for (int i = 0; i < 64; ++i)
            g[i] = i < 32 ? static_cast<float>(i) : -static_cast<float>(i - 32) * 0.25f;
        std::vector<float> out(64);
        fmt("INT2-g32-asym")->roundTrip(g.data(), 1, 64, out.data());
        QCOMPARE(out[31], 31.0f / 3 * 3);  // scale 31/3, zero 0: 3 steps
        QCOMPARE(out[16], 31.0f / 3 * 2);  // 16 / 10.33 = 1.55 -> 2
        QCOMPARE(out[63], 7.75f / 3 * -3); // scale 7.75/3, zero 3
        QCOMPARE(out[40], 7.75f / 3 * -1); // -2 / 2.583 = -0.77 -> -1
        const auto levels = fmt("INT2-g32-asym")->gridLevels(g.data(), 32);
        QCOMPARE(levels.size(), size_t(4));
        QCOMPARE(levels[3], 31.0f / 3 * 3);
        // Chunked processing with the tensor's range equals whole-tensor processing.
        std::vector<float> whole(64), chunked(64);
        fmt("INT4-tensor-asym")->roundTrip(g.data(), 4, 16, whole.data());
        for (int r = 0; r < 4; ++r)
            fmt("INT4-tensor-asym")
                ->roundTripChunk(g.data() + r * 16, 1, 16, chunked.data() + r * 16, nullptr, {-7.75f, 31.0f});
        QCOMPARE(chunked, whole);
    }

    void fp8Encoding()
    {
        using qs::Fp8Kind;
        // Every finite code survives decode -> encode (through dtype.cpp's decoder).
        for (Fp8Kind kind : {Fp8Kind::E4M3, Fp8Kind::E5M2}) {
            const qs::DType dt = kind == Fp8Kind::E4M3 ? qs::DType::F8_E4M3 : qs::DType::F8_E5M2;
            for (int c = 0; c < 256; ++c) {
                const uint8_t code = static_cast<uint8_t>(c);
                float v;
                qs::decodeToFloat(dt, &code, 1, &v);
                if (!std::isfinite(v))
                    continue;
                QCOMPARE(qs::fp8ToFloat(kind, code), v);
                QCOMPARE(int(qs::floatToFp8(kind, v)), c);
            }
        }
        // Ties to even, saturation, subnormals (E4M3: 1.0 = 0x38, 1.125 = 0x39, 1.25 = 0x3A).
        QCOMPARE(int(qs::floatToFp8(Fp8Kind::E4M3, 1.0625f)), 0x38);
        QCOMPARE(int(qs::floatToFp8(Fp8Kind::E4M3, 1.1875f)), 0x3A);
        QCOMPARE(int(qs::floatToFp8(Fp8Kind::E4M3, 1.07f)), 0x39);
        QCOMPARE(int(qs::floatToFp8(Fp8Kind::E4M3, 500.0f)), 0x7E);
        QCOMPARE(int(qs::floatToFp8(Fp8Kind::E4M3, -1e9f)), 0xFE);
        QCOMPARE(int(qs::floatToFp8(Fp8Kind::E5M2, 1e9f)), 0x7B);
        QCOMPARE(int(qs::floatToFp8(Fp8Kind::E4M3, std::ldexp(1.0f, -10))), 0x00); // half of 2^-9: to 0
        QCOMPARE(int(qs::floatToFp8(Fp8Kind::E4M3, std::ldexp(1.5f, -9))), 0x02);  // 1.5 quanta -> 2
        QCOMPARE(int(qs::floatToFp8(Fp8Kind::E4M3, std::ldexp(7.5f, -9))), 0x08);  // -> smallest normal 2^-6
        QCOMPARE(int(qs::floatToFp8(Fp8Kind::E5M2, std::ldexp(1.0f, -16))), 0x01);
        QCOMPARE(int(qs::floatToFp8(Fp8Kind::E5M2, 1.125f)), 0x3C); // tie between 1.0 and 1.25 -> 1.0
        QCOMPARE(int(qs::floatToFp8(Fp8Kind::E5M2, 1.375f)), 0x3E); // tie between 1.25 and 1.5 -> 1.5
    }

    void fp8RoundTrip()
    {
        // Per tensor: scale = 3 / 448. 3 -> 448 exactly; 1 -> 149.33 -> 144 (E4M3 step 8 in [128, 256)).
        const float x[4] = {1.0f, -2.0f, 3.0f, 0.01f};
        float y[4];
        fmt("FP8-E4M3")->roundTrip(x, 1, 4, y);
        const float s = 3.0f / 448.0f;
        QCOMPARE(y[0], 144.0f * s);
        QCOMPARE(y[1], -288.0f * s); // 298.67 -> 288 (step 32 in [256, 448])
        QCOMPARE(y[2], 448.0f * s);
        QCOMPARE(y[3], 1.5f * s); // 1.4933 -> 1.5 (step 0.125 in [1, 2))
        // The vectorised value path agrees with byte encoding + decoding on values of every magnitude.
        std::mt19937 rng(7);
        std::uniform_real_distribution<float> mant(-1.0f, 1.0f);
        std::uniform_int_distribution<int> expo(-30, 12);
        for (qs::Fp8Kind kind : {qs::Fp8Kind::E4M3, qs::Fp8Kind::E5M2}) {
            std::vector<float> v(20000), out(20000);
            for (auto& a : v)
                a = std::ldexp(mant(rng), expo(rng));
            v[0] = 4096.0f; // sets the scale
            qs::fp8RoundTrip(kind, false, v.data(), 1, v.size(), out.data());
            const float scale = 4096.0f / qs::fp8MaxFinite(kind);
            for (size_t i = 0; i < v.size(); ++i)
                QCOMPARE(out[i], qs::fp8ToFloat(kind, qs::floatToFp8(kind, v[i] / scale)) * scale);
        }
        // Per channel: every row reaches its own maximum exactly.
        const float m[6] = {0.5f, -0.25f, 0.1f, 100.0f, 3.0f, -7.0f};
        float o[6];
        fmt("FP8-E5M2-ch")->roundTrip(m, 2, 3, o);
        QCOMPARE(o[0], 0.5f);
        QCOMPARE(o[3], 100.0f);
        QCOMPARE(o[1], -0.25f); // 0.25 / 0.5 * 57344 = 28672 is on the E5M2 grid
        // Chunked per-tensor with the global range equals the whole tensor.
        float whole[6], chunked[6];
        fmt("FP8-E4M3")->roundTrip(m, 2, 3, whole);
        fmt("FP8-E4M3")->roundTripChunk(m, 1, 3, chunked, nullptr, {-7.0f, 100.0f});
        fmt("FP8-E4M3")->roundTripChunk(m + 3, 1, 3, chunked + 3, nullptr, {-7.0f, 100.0f});
        for (int i = 0; i < 6; ++i)
            QCOMPARE(chunked[i], whole[i]);
        const auto levels = fmt("FP8-E4M3")->gridLevels(m, 6);
        QCOMPARE(levels.size(), size_t(253)); // 126 positive, 126 negative finite values and zero
        QCOMPARE(levels.back(), 100.0f);
    }

    void nf4()
    {
        QCOMPARE(qs::nf4Codebook()[0], -1.0f);
        QCOMPARE(qs::nf4Codebook()[7], 0.0f);
        QCOMPARE(int(qs::nf4Index(1.0f)), 15);
        QCOMPARE(int(qs::nf4Index(0.5f)), 12);  // 0.4407 is nearer than 0.5626
        QCOMPARE(int(qs::nf4Index(0.05f)), 8);  // 0.0796 is nearer than 0
        QCOMPARE(int(qs::nf4Index(-0.03f)), 7); // 0 is nearer than -0.091
        QCOMPARE(int(qs::nf4Index(-2.0f)), 0);
        // One block (5 values): absmax 2.
        const float x[5] = {2.0f, -2.0f, 1.0f, 0.1f, 0.0f};
        float y[5];
        fmt("NF4")->roundTrip(x, 1, 5, y);
        QCOMPARE(y[0], 2.0f);
        QCOMPARE(y[1], -2.0f);
        QCOMPARE(y[2], 0.44070982933044434f * 2.0f);
        QCOMPARE(y[3], 0.07958029955625534f * 2.0f);
        QCOMPARE(y[4], 0.0f);
        // Blocks of 64 run over the flat tensor: 3 x 40 values are two blocks (64 + 56), so row 2 mixes the
        // scale of both. A value of 10 in row 0 sets block 0's scale only.
        std::vector<float> v(120, 1.0f), out(120);
        v[0] = 10.0f;
        fmt("NF4")->roundTrip(v.data(), 3, 40, out.data());
        QCOMPARE(out[63], qs::nf4Codebook()[8] * 10.0f); // 0.1 -> code 0.0796 (nearer than 0.1609)
        QCOMPARE(out[64], 1.0f);
        QCOMPARE(fmt("NF4")->rowAlignment(40), uint64_t(8));
        QCOMPARE(fmt("NF4")->rowAlignment(4096), uint64_t(1));
        const auto levels = fmt("NF4")->gridLevels(x, 5);
        QCOMPARE(levels.size(), size_t(16));
        QCOMPARE(levels.front(), -2.0f);
    }

    void floats()
    {
        const float x[3] = {1.0f + std::ldexp(1.0f, -11), 3.14159265f, 65520.0f};
        float y[3];
        fmt("F16")->roundTrip(x, 1, 3, y);
        QCOMPARE(y[0], 1.0f); // tie to even
        QCOMPARE(y[1], qs::halfToFloat(qs::floatToHalf(3.14159265f)));
        QVERIFY(std::isinf(y[2]));
        fmt("BF16")->roundTrip(x, 1, 3, y);
        QCOMPARE(y[1], 3.140625f);
        QVERIFY(fmt("BF16")->gridLevels(x, 3).empty());
    }

    // The ggml-backed formats reproduce ggml's own dequantization of the reference inputs.
    void ggmlRoundTrip()
    {
        QVERIFY(fmt("Q8_0")->available());
        const GgufFile g = readGguf(QStringLiteral(QS_TEST_DATA "/reference/ggml-quants.gguf"));
        // Every ggml type (the k-quants and IQ4 included) reproduces ggml's dequantized reference exactly;
        // the grid levels of a block hold every value its round trip produced.
        for (const char* type : {"q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q2_K", "q3_K", "q4_K", "q5_K",
                                 "q6_K", "iq4_nl", "iq4_xs", "mxfp4"}) {
            for (const char* dist : {"gauss", "student_t3", "real_ppocr_rec"}) {
                const auto* in = g.find(std::string(dist) + ".f32");
                const auto* deq = g.find(std::string(dist) + "." + type + ".deq");
                QVERIFY(in && deq);
                std::vector<float> out(8 * 2048);
                fmt(type)->roundTrip(g.f32(*in), 8, 2048, out.data());
                QVERIFY2(std::memcmp(out.data(), g.f32(*deq), out.size() * 4) == 0, type);
                const size_t block = static_cast<size_t>(fmt(type)->traits().groupSize);
                const auto levels = fmt(type)->gridLevels(g.f32(*in), block);
                QVERIFY(!levels.empty());
                for (size_t i = 0; i < block; ++i)
                    QVERIFY2(std::find(levels.begin(), levels.end(), out[i]) != levels.end(), type);
            }
        }
        // The full grids of the scale-only types: Q4_0 has 16 levels d * (k - 8), MXFP4 15 distinct values.
        const auto* in = g.find("gauss.f32");
        QCOMPARE(fmt("Q4_0")->gridLevels(g.f32(*in), 32).size(), size_t(16));
        QCOMPARE(fmt("MXFP4")->gridLevels(g.f32(*in), 32).size(), size_t(15));
        QCOMPARE(fmt("IQ4_NL")->gridLevels(g.f32(*in), 32).size(), size_t(16));
    }
};

QTEST_APPLESS_MAIN(TestFormats)
#include "tst_formats.moc"
