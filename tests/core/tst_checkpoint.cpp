// Checkpoint writers (core/io/checkpointwriter.h) checked against the layouts as the tools document them,
// re-implemented here independently of the writer:
// - compressed-tensors pack-quantized (compressors/quantized_compressors/pack_quantized.py): 32 / bits codes
//   per int32 word along the input dimension, first code in the lowest bits, codes stored as signed value +
//   2^(bits-1); asymmetric zero points packed the same way along the output dimension; weight_shape;
// - compressed-tensors float-quantized: F8_E4M3 weight and a float32 weight_scale;
// - GPTQ v1 (AutoGPTQ / GPTQModel): qweight [K / pf, N] packing along K, qzeros [G, N / pf] holding
//   zero - 1, fp16 scales [G, N], g_idx [K] = k / group_size.
// Codes must be those of the RTN quantizer (int_quant.h), dequantized values bit for bit the quantizer's.
#include "core/io/checkpointwriter.h"
#include "core/io/safetensors.h"
#include "core/model/model.h"
#include "core/plan/plan.h"
#include "core/quant/format.h"
#include "core/quant/fp8.h"
#include "core/quant/int_quant.h"
#include "core/util/atomicfile.h"
#include "core/util/error.h"
#include "core/util/job.h"

#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QTemporaryDir>
#include <QTest>
#include <cmath>
#include <cstring>
#include <filesystem>

namespace fs = std::filesystem;

namespace {

const fs::path kSample = fs::path(QS_SAMPLE_DIR) / "stories260K";

QByteArray readAll(const fs::path& p)
{
    QFile f(QString::fromStdString(p.string()));
    if (!f.open(QIODevice::ReadOnly))
        return {};
    return f.readAll();
}

// A safetensors file read by the format's definition: u64 header length, JSON header, data region.
struct StFile {
    QJsonObject header;
    QByteArray data;
    quint64 headerLength = 0;
    QByteArray bytes(const QString& name) const
    {
        const auto off = header.value(name).toObject().value("data_offsets").toArray();
        return data.mid(off.at(0).toInteger(), off.at(1).toInteger() - off.at(0).toInteger());
    }
    QString dtype(const QString& name) const
    {
        return header.value(name).toObject().value("dtype").toString();
    }
    std::vector<qint64> shape(const QString& name) const
    {
        std::vector<qint64> s;
        for (const auto& d : header.value(name).toObject().value("shape").toArray())
            s.push_back(d.toInteger());
        return s;
    }
};

StFile readSt(const fs::path& p)
{
    StFile st;
    const QByteArray all = readAll(p);
    if (all.size() < 8)
        return st;
    for (int i = 7; i >= 0; --i)
        st.headerLength = (st.headerLength << 8) | static_cast<uchar>(all[i]);
    st.header = QJsonDocument::fromJson(all.mid(8, static_cast<qsizetype>(st.headerLength))).object();
    st.data = all.mid(8 + static_cast<qsizetype>(st.headerLength));
    return st;
}

uint32_t word(const QByteArray& b, qint64 i)
{
    uint32_t v;
    std::memcpy(&v, b.constData() + 4 * i, 4);
    return v;
}

float f32(const QByteArray& b, qint64 i)
{
    float v;
    std::memcpy(&v, b.constData() + 4 * i, 4);
    return v;
}

uint16_t u16(const QByteArray& b, qint64 i)
{
    uint16_t v;
    std::memcpy(&v, b.constData() + 2 * i, 2);
    return v;
}

std::vector<float> decoded(const qs::Model& m, const std::string& name)
{
    const auto* t = m.find(name);
    if (!t)
        return {};
    std::vector<float> v(t->elements());
    m.decode(*t, 0, v.size(), v.data());
    return v;
}

std::vector<float> roundTrip(const std::string& format, const std::vector<float>& x, uint64_t rows,
                             uint64_t cols)
{
    std::vector<float> y(x.size());
    qs::findFormat(format)->roundTrip(x.data(), rows, cols, y.data());
    return y;
}

const char* kLayers[] = {"0", "1", "2", "3", "4"};

std::string layer(const char* l, const char* suffix)
{
    return std::string("model.layers.") + l + "." + suffix;
}

// Expected codes of one (row, group) from the quantizer's grid.
struct ExpectedGroup {
    qs::IntGrid grid;
    std::vector<int> codes;
};

ExpectedGroup expectedGroup(const float* x, uint64_t n, int bits, bool sym)
{
    float lo = 0, hi = 0;
    for (uint64_t i = 0; i < n; ++i) {
        lo = std::min(lo, x[i]);
        hi = std::max(hi, x[i]);
    }
    ExpectedGroup g{qs::intGridFor(lo, hi, bits, sym), {}};
    for (uint64_t i = 0; i < n; ++i) {
        // The grid value v = scale * (q - zero) identifies q.
        const float v = g.grid.quantize(x[i]);
        g.codes.push_back(static_cast<int>(std::lround(v / g.grid.scale + g.grid.zero)));
    }
    return g;
}

// The scheme a reopened weight reports: a group as long as the row is stored exactly like per channel.
std::string reopenedScheme(const std::string& format, uint64_t cols)
{
    const auto f = qs::findFormat(format);
    const auto& tr = f->traits();
    if (tr.kind != qs::FormatKind::Integer || tr.groupSize != static_cast<int>(cols))
        return f->name();
    return "INT" + std::to_string(tr.bits) + "-ch-" + (tr.symmetric ? "sym" : "asym");
}

} // namespace

class TstCheckpoint : public QObject {
    Q_OBJECT

private slots:
    void cleanup() { qs::AtomicFile::setFailAfterBytesForTesting(0); }

    void compressedTensorsOnSample()
    {
        const auto model = qs::loadSafetensors(kSample / "hf-f32", nullptr);
        qs::Plan plan;
        for (const char* l : kLayers) {
            for (const char* p :
                 {"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight"})
                plan.assign(layer(l, p), "INT4-g32-asym");
            plan.assign(layer(l, "self_attn.o_proj.weight"), "INT4-ch-sym");
            plan.assign(layer(l, "mlp.gate_proj.weight"), "INT8-g64-sym");
            plan.assign(layer(l, "mlp.up_proj.weight"), "INT8-g64-sym");
            plan.assign(layer(l, "mlp.down_proj.weight"), "FP8-E4M3-ch");
        }
        plan.assign("lm_head.weight", "FP8-E4M3");
        QVERIFY(qs::checkpointProblems(qs::CheckpointKind::CompressedTensors, *model, plan).empty());

        QTemporaryDir tmp;
        const fs::path out = fs::path(tmp.path().toStdString()) / "ct";
        const auto report = qs::writeCompressedTensors(*model, plan, out, nullptr);
        QVERIFY(report.warnings.empty());
        QVERIFY(fs::exists(out / "model.safetensors"));
        QVERIFY(!fs::exists(out / "model.safetensors.index.json"));
        QCOMPARE(report.bytesWritten, [&] {
            uint64_t n = 0;
            for (const auto& f : report.files)
                n += fs::file_size(f);
            return n;
        }());

        // config.json: the input's keys plus quantization_config with one group per scheme.
        const auto config = QJsonDocument::fromJson(readAll(out / "config.json")).object();
        QCOMPARE(config.value("hidden_size").toInt(), 64);
        const auto qc = config.value("quantization_config").toObject();
        QCOMPARE(qc.value("quant_method").toString(), QString("compressed-tensors"));
        QCOMPARE(qc.value("format").toString(), QString("mixed-precision"));
        QCOMPARE(qc.value("config_groups").toObject().size(), 5);

        const StFile st = readSt(out / "model.safetensors");
        QCOMPARE(st.headerLength % 8, 0u);
        QCOMPARE(st.header.value("__metadata__").toObject().value("format").toString(), QString("pt"));

        // INT4 group 32 asymmetric: q_proj 64 x 64.
        const std::string q = layer("2", "self_attn.q_proj.");
        const QString qn = QString::fromStdString(q);
        QVERIFY(!st.header.contains(qn + "weight"));
        QCOMPARE(st.dtype(qn + "weight_packed"), QString("I32"));
        QCOMPARE(st.shape(qn + "weight_packed"), (std::vector<qint64>{64, 8}));
        QCOMPARE(st.dtype(qn + "weight_scale"), QString("F32"));
        QCOMPARE(st.shape(qn + "weight_scale"), (std::vector<qint64>{64, 2}));
        QCOMPARE(st.dtype(qn + "weight_zero_point"), QString("I32"));
        QCOMPARE(st.shape(qn + "weight_zero_point"), (std::vector<qint64>{8, 2}));
        QCOMPARE(st.dtype(qn + "weight_shape"), QString("I64"));
        const QByteArray shapeBytes = st.bytes(qn + "weight_shape");
        QCOMPARE(shapeBytes.size(), 16);
        int64_t dims[2];
        std::memcpy(dims, shapeBytes.constData(), 16);
        QCOMPARE(dims[0], 64);
        QCOMPARE(dims[1], 64);

        const auto x = decoded(*model, q + "weight");
        const auto rt = roundTrip("INT4-g32-asym", x, 64, 64);
        const QByteArray packed = st.bytes(qn + "weight_packed"), scales = st.bytes(qn + "weight_scale"),
                         zps = st.bytes(qn + "weight_zero_point");
        for (int r = 0; r < 64; ++r)
            for (int g = 0; g < 2; ++g) {
                const auto e = expectedGroup(x.data() + r * 64 + g * 32, 32, 4, false);
                QCOMPARE(f32(scales, r * 2 + g), e.grid.scale);
                // Signed zero point + 8 in 4-bit fields, 8 rows per word.
                const int zpStored = static_cast<int>((word(zps, (r / 8) * 2 + g) >> (4 * (r % 8))) & 15);
                QCOMPARE(zpStored, static_cast<int>(e.grid.zero));
                for (int i = 0; i < 32; ++i) {
                    const int c = g * 32 + i;
                    const int stored = static_cast<int>((word(packed, r * 8 + c / 8) >> (4 * (c % 8))) & 15);
                    QCOMPARE(stored, e.codes[i]);
                    // compressed-tensors dequantization: (signed q - signed zp) * scale.
                    const float v =
                        f32(scales, r * 2 + g) * static_cast<float>((stored - 8) - (zpStored - 8));
                    QCOMPARE(std::bit_cast<uint32_t>(v), std::bit_cast<uint32_t>(rt[r * 64 + c]));
                }
            }

        // INT8 group 64 symmetric (gate 172 x 64): no zero point; codes offset by 128.
        const QString gn = QString::fromStdString(layer("0", "mlp.gate_proj."));
        QVERIFY(!st.header.contains(gn + "weight_zero_point"));
        QCOMPARE(st.shape(gn + "weight_packed"), (std::vector<qint64>{172, 16}));
        QCOMPARE(st.shape(gn + "weight_scale"), (std::vector<qint64>{172, 1}));
        {
            const auto gx = decoded(*model, layer("0", "mlp.gate_proj.weight"));
            const auto grt = roundTrip("INT8-g64-sym", gx, 172, 64);
            const QByteArray gp = st.bytes(gn + "weight_packed"), gs = st.bytes(gn + "weight_scale");
            for (int r = 0; r < 172; ++r)
                for (int c = 0; c < 64; ++c) {
                    const int stored = static_cast<int>((word(gp, r * 16 + c / 4) >> (8 * (c % 4))) & 255);
                    const float v = f32(gs, r) * static_cast<float>(stored - 128);
                    QCOMPARE(std::bit_cast<uint32_t>(v), std::bit_cast<uint32_t>(grt[r * 64 + c]));
                }
        }

        // FP8 per channel (down 64 x 172) and per tensor (lm_head).
        for (const auto& [name, format, rows, cols] :
             {std::tuple{layer("4", "mlp.down_proj."), std::string("FP8-E4M3-ch"), 64, 172},
              std::tuple{std::string("lm_head."), std::string("FP8-E4M3"), 512, 64}}) {
            const QString n = QString::fromStdString(name);
            QCOMPARE(st.dtype(n + "weight"), QString("F8_E4M3"));
            QCOMPARE(st.shape(n + "weight"), (std::vector<qint64>{rows, cols}));
            QCOMPARE(st.dtype(n + "weight_scale"), QString("F32"));
            const bool ch = format.ends_with("-ch");
            const std::vector<qint64> scaleShape = ch ? std::vector<qint64>{rows, 1} : std::vector<qint64>{1};
            QCOMPARE(st.shape(n + "weight_scale"), scaleShape);
            const auto fx = decoded(*model, name + "weight");
            const auto frt = roundTrip(format, fx, rows, cols);
            const QByteArray w = st.bytes(n + "weight"), s = st.bytes(n + "weight_scale");
            for (int r = 0; r < rows; ++r)
                for (int c = 0; c < cols; ++c) {
                    const float v = qs::fp8ToFloat(qs::Fp8Kind::E4M3, static_cast<uint8_t>(w[r * cols + c])) *
                                    f32(s, ch ? r : 0);
                    QCOMPARE(std::bit_cast<uint32_t>(v), std::bit_cast<uint32_t>(frt[r * cols + c]));
                }
        }

        // Reopened with our loader: one tensor per weight, in its planned scheme, decoding bit for bit to the
        // quantizer's round trip; the parts are not listed.
        const auto back = qs::loadSafetensors(out, nullptr);
        QCOMPARE(back->tensors().size(), model->tensors().size());
        for (const auto& t : model->tensors()) {
            const auto* b = back->find(t.name);
            QVERIFY2(b, t.name.c_str());
            QCOMPARE(b->shape, t.shape);
            const auto format = plan.formatOf(t.name);
            if (!format) {
                QCOMPARE(b->dtype, t.dtype);
                QVERIFY(!b->packed);
                continue;
            }
            QCOMPARE(b->dtype, qs::DType::Packed);
            QVERIFY(b->packed);
            QCOMPARE(b->packed->scheme, reopenedScheme(*format, t.columns()));
            QVERIFY(!back->find(t.name + "_scale"));
            const auto want = roundTrip(*format, decoded(*model, t.name), t.rows(), t.columns());
            const auto got = decoded(*back, t.name);
            QCOMPARE(got.size(), want.size());
            QVERIFY2(std::memcmp(got.data(), want.data(), want.size() * 4) == 0, t.name.c_str());
        }
        QVERIFY(back->totalBytes() < model->totalBytes() / 2);

        // Untouched tensors: same dtype, shape and bytes.
        const StFile in = readSt(kSample / "hf-f32" / "model.safetensors");
        for (const char* n :
             {"model.embed_tokens.weight", "model.norm.weight", "model.layers.3.input_layernorm.weight"}) {
            QCOMPARE(st.dtype(n), in.dtype(n));
            QCOMPARE(st.shape(n), in.shape(n));
            QVERIFY(st.bytes(n) == in.bytes(n));
        }
    }

    void gptqOnSample()
    {
        const auto model = qs::loadSafetensors(kSample / "hf-f32", nullptr);
        qs::Plan plan;
        for (const char* l : kLayers) {
            for (const char* p : {"self_attn.q_proj.weight", "self_attn.k_proj.weight",
                                  "self_attn.v_proj.weight", "self_attn.o_proj.weight"})
                plan.assign(layer(l, p), "INT4-g32-sym");
            plan.assign(layer(l, "mlp.gate_proj.weight"), "INT8-ch-asym");
            plan.assign(layer(l, "mlp.up_proj.weight"), "INT8-ch-asym");
            // 172 columns: per channel.
            plan.assign(layer(l, "mlp.down_proj.weight"), "INT8-ch-asym");
        }
        plan.assign("lm_head.weight", "INT4-g64-asym");
        QVERIFY(qs::checkpointProblems(qs::CheckpointKind::Gptq, *model, plan).empty());

        QTemporaryDir tmp;
        const fs::path out = fs::path(tmp.path().toStdString()) / "gptq";
        const auto report = qs::writeGptqCheckpoint(*model, plan, out, nullptr);
        QVERIFY(!report.warnings.empty()); // 172 is not a multiple of 32

        const auto qcfg = QJsonDocument::fromJson(readAll(out / "quantize_config.json")).object();
        QCOMPARE(qcfg.value("quant_method").toString(), QString("gptq"));
        QCOMPARE(qcfg.value("checkpoint_format").toString(), QString("gptq"));
        QVERIFY(!qcfg.value("dynamic").toObject().isEmpty()); // mixed bits
        const auto config = QJsonDocument::fromJson(readAll(out / "config.json")).object();
        QCOMPARE(config.value("quantization_config").toObject(), qcfg);

        const StFile st = readSt(out / "model.safetensors");
        for (const auto& [name, bits, group, sym, n, k] :
             {std::tuple{layer("1", "self_attn.k_proj."), 4, 32, true, 32, 64},
              std::tuple{layer("3", "mlp.down_proj."), 8, -1, false, 64, 172},
              std::tuple{std::string("lm_head."), 4, 64, false, 512, 64}}) {
            const QString qn = QString::fromStdString(name);
            const int pf = 32 / bits, groups = group > 0 ? k / group : 1, gl = group > 0 ? group : k;
            QVERIFY(!st.header.contains(qn + "weight"));
            QCOMPARE(st.dtype(qn + "qweight"), QString("I32"));
            QCOMPARE(st.shape(qn + "qweight"), (std::vector<qint64>{(k + pf - 1) / pf, n}));
            QCOMPARE(st.dtype(qn + "qzeros"), QString("I32"));
            QCOMPARE(st.shape(qn + "qzeros"), (std::vector<qint64>{groups, (n + pf - 1) / pf}));
            QCOMPARE(st.dtype(qn + "scales"), QString("F16"));
            QCOMPARE(st.shape(qn + "scales"), (std::vector<qint64>{groups, n}));
            QCOMPARE(st.dtype(qn + "g_idx"), QString("I32"));
            QCOMPARE(st.shape(qn + "g_idx"), (std::vector<qint64>{k}));
            const QByteArray qw = st.bytes(qn + "qweight"), qz = st.bytes(qn + "qzeros"),
                             sc = st.bytes(qn + "scales"), gi = st.bytes(qn + "g_idx");
            const auto x = decoded(*model, name + "weight");
            const uint32_t mask = (1u << bits) - 1;
            for (int col = 0; col < n; ++col)
                for (int g = 0; g < groups; ++g) {
                    const auto e = expectedGroup(x.data() + col * k + g * gl, gl, bits, sym);
                    QCOMPARE(u16(sc, g * n + col), qs::floatToHalf(e.grid.scale));
                    const uint32_t z =
                        ((word(qz, g * ((n + pf - 1) / pf) + col / pf) >> (bits * (col % pf))) & mask) + 1;
                    QCOMPARE(z, static_cast<uint32_t>(e.grid.zero));
                    for (int i = 0; i < gl; ++i) {
                        const int kk = g * gl + i;
                        const int stored =
                            static_cast<int>((word(qw, (kk / pf) * n + col) >> (bits * (kk % pf))) & mask);
                        QCOMPARE(stored, e.codes[i]);
                        QCOMPARE(static_cast<int>(word(gi, kk)), g);
                    }
                }
        }

        // Reopened: one tensor per weight in its planned scheme; values fp16(scale) * (q - zero) with the
        // codes unpacked above (the RTN codes), i.e. the round trip with the scale GPTQ stores.
        const auto back = qs::loadSafetensors(out, nullptr);
        QCOMPARE(back->tensors().size(), model->tensors().size());
        for (const auto& [name, format] : plan.assignments()) {
            const auto* b = back->find(name);
            QVERIFY2(b && b->packed, name.c_str());
            const auto* t = model->find(name);
            QCOMPARE(b->packed->scheme, reopenedScheme(format, t->columns()));
            QCOMPARE(b->packed->layout, std::string("GPTQ"));
            const auto f = qs::findFormat(format);
            const int bits = f->traits().bits;
            const uint64_t k = t->columns(), gl = f->traits().groupSize > 0 ? f->traits().groupSize : k;
            const auto x = decoded(*model, name);
            const auto got = decoded(*back, name);
            for (uint64_t r = 0; r < t->rows(); ++r)
                for (uint64_t g = 0; g < k / gl; ++g) {
                    const auto e = expectedGroup(x.data() + r * k + g * gl, gl, bits, f->traits().symmetric);
                    const float s = qs::halfToFloat(qs::floatToHalf(e.grid.scale));
                    for (uint64_t i = 0; i < gl; ++i) {
                        // v1 cannot hold a zero point of 0 (see the writer's warning): it reads back as
                        // 2^bits.
                        const float z = e.grid.zero == 0 ? static_cast<float>(1 << bits) : e.grid.zero;
                        const float v = s * (static_cast<float>(e.codes[i]) - z);
                        QCOMPARE(std::bit_cast<uint32_t>(got[r * k + g * gl + i]),
                                 std::bit_cast<uint32_t>(v));
                    }
                }
        }
        QVERIFY(!back->find("lm_head.qweight"));
        QVERIFY(!back->find("lm_head.g_idx"));

        // A hostile g_idx pointing past the groups is refused, naming the tensor.
        const fs::path file = out / "model.safetensors";
        const StFile st2 = readSt(file);
        const qint64 at =
            8 + static_cast<qint64>(st2.headerLength) +
            st2.header.value("lm_head.g_idx").toObject().value("data_offsets").toArray().at(0).toInteger();
        {
            QFile f(QString::fromStdString(file.string()));
            QVERIFY(f.open(QIODevice::ReadWrite));
            QVERIFY(f.seek(at + 4 * 5));
            const int32_t bad = 7;
            f.write(reinterpret_cast<const char*>(&bad), 4);
        }
        try {
            qs::loadSafetensors(out, nullptr);
            QFAIL("expected a format error");
        } catch (const qs::FormatError& e) {
            QCOMPARE(e.field(), std::string("lm_head.g_idx"));
            QVERIFY2(std::string(e.what()).find("g_idx[5] = 7") != std::string::npos, e.what());
        }
    }

    void fakeQuantSharded()
    {
        const fs::path in = kSample / "hf-bf16-sharded";
        const auto model = qs::loadSafetensors(in, nullptr);
        qs::Plan plan;
        plan.assign("model.layers.0.self_attn.q_proj.weight", "Q8_0");
        plan.assign("model.layers.4.mlp.down_proj.weight", "INT4-ch-asym");
        plan.assign("lm_head.weight", "NF4");
        plan.assign("model.layers.2.mlp.up_proj.weight", "FP8-E5M2");
        QVERIFY(qs::checkpointProblems(qs::CheckpointKind::FakeQuant, *model, plan).empty());

        QTemporaryDir tmp;
        const fs::path out = fs::path(tmp.path().toStdString()) / "fake";
        qs::JobControl job;
        const auto report = qs::writeFakeQuant(*model, plan, out, &job);
        QCOMPARE(job.progress().fraction, 1.0);
        QVERIFY(fs::exists(out / "model-00001-of-00002.safetensors"));
        QVERIFY(fs::exists(out / "model-00002-of-00002.safetensors"));
        QVERIFY(readAll(out / "config.json") == readAll(in / "config.json"));

        // The index maps every tensor to the shard holding it and totals the data regions.
        const auto index = QJsonDocument::fromJson(readAll(out / "model.safetensors.index.json")).object();
        const auto wm = index.value("weight_map").toObject();
        QCOMPARE(static_cast<size_t>(wm.size()), model->tensors().size());
        qint64 total = 0;
        for (const char* shard : {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}) {
            const StFile st = readSt(out / shard);
            const StFile orig = readSt(in / shard);
            QCOMPARE(st.header.keys(), orig.header.keys());
            for (const auto& key : st.header.keys()) {
                if (key == "__metadata__")
                    continue;
                QCOMPARE(wm.value(key).toString(), QString(shard));
                QCOMPARE(st.dtype(key), orig.dtype(key));
                QCOMPARE(st.shape(key), orig.shape(key));
                total += st.bytes(key).size();
                if (!plan.formatOf(key.toStdString()))
                    QVERIFY(st.bytes(key) == orig.bytes(key));
            }
        }
        QCOMPARE(index.value("metadata").toObject().value("total_size").toInteger(), total);

        // Reopened: planned tensors are bf16(round trip), bit for bit.
        const auto back = qs::loadSafetensors(out, nullptr);
        for (const auto& [name, format] : plan.assignments()) {
            const auto* t = model->find(name);
            const auto rt = roundTrip(format, decoded(*model, name), t->rows(), t->columns());
            const auto got = decoded(*back, name);
            QCOMPARE(got.size(), rt.size());
            for (size_t i = 0; i < rt.size(); ++i)
                QCOMPARE(std::bit_cast<uint32_t>(got[i]),
                         std::bit_cast<uint32_t>(qs::bf16ToFloat(qs::floatToBf16(rt[i]))));
        }
    }

    void failuresLeaveNothing()
    {
        const auto model = qs::loadSafetensors(kSample / "hf-bf16-sharded", nullptr);
        qs::Plan plan;
        for (const char* l : kLayers)
            plan.assign(layer(l, "mlp.down_proj.weight"), "INT4-ch-asym");
        QTemporaryDir tmp;
        const fs::path root(tmp.path().toStdString());

        auto expectFailure = [&](const fs::path& out, qs::ErrorCode code, const std::string& needle,
                                 const qs::Plan& p, qs::JobControl* job) {
            try {
                qs::writeCompressedTensors(*model, p, out, job);
                QFAIL("expected an error");
            } catch (const qs::Error& e) {
                QVERIFY2(e.code() == code, e.what());
                QVERIFY2(std::string(e.what()).find(needle) != std::string::npos, e.what());
            }
        };

        // Disk full part way through the first shard.
        qs::AtomicFile::setFailAfterBytesForTesting(200000);
        expectFailure(root / "enospc", qs::ErrorCode::Io, "No space left", plan, nullptr);
        qs::AtomicFile::setFailAfterBytesForTesting(0);
        QVERIFY(!fs::exists(root / "enospc"));

        // Cancelled once the first bytes are reported.
        qs::JobControl* self = nullptr;
        qs::JobControl job(qs::JobControl::ProgressHandler([&](const qs::JobProgress& p) {
            if (p.bytesDone > 0)
                self->cancel();
        }));
        self = &job;
        expectFailure(root / "cancel", qs::ErrorCode::Cancelled, "cancelled", plan, &job);
        QVERIFY(!fs::exists(root / "cancel"));

        // An existing empty folder stays, empty.
        fs::create_directory(root / "empty");
        qs::AtomicFile::setFailAfterBytesForTesting(1000);
        expectFailure(root / "empty", qs::ErrorCode::Io, "No space left", plan, nullptr);
        qs::AtomicFile::setFailAfterBytesForTesting(0);
        QVERIFY(fs::is_empty(root / "empty"));

        expectFailure(kSample / "hf-bf16-sharded", qs::ErrorCode::BadValue, "model's own folder", plan,
                      nullptr);
        fs::create_directory(root / "full");
        QFile(QString::fromStdString((root / "full" / "x").string())).open(QIODevice::WriteOnly);
        expectFailure(root / "full", qs::ErrorCode::BadValue, "not empty", plan, nullptr);

        qs::Plan unknown = plan;
        unknown.assign("model.layers.9.mlp.down_proj.weight", "INT4-ch-asym");
        expectFailure(root / "unknown", qs::ErrorCode::BadValue,
                      "model.layers.9.mlp.down_proj.weight: not a tensor", unknown, nullptr);
        qs::Plan impossible = plan;
        impossible.assign("model.layers.1.mlp.down_proj.weight", "INT4-g32-asym"); // 172 columns
        expectFailure(root / "impossible", qs::ErrorCode::BadValue,
                      "model.layers.1.mlp.down_proj.weight (INT4-g32-asym): group size 32 does not divide",
                      impossible, nullptr);
        qs::Plan ggml = plan;
        ggml.assign("model.layers.1.mlp.down_proj.weight", "Q8_0");
        expectFailure(root / "ggml", qs::ErrorCode::BadValue, "model.layers.1.mlp.down_proj.weight (Q8_0)",
                      ggml, nullptr);
        for (const char* n : {"unknown", "impossible", "ggml"})
            QVERIFY(!fs::exists(root / n));
        QVERIFY(!qs::checkpointProblems(qs::CheckpointKind::Gptq, *model, ggml).empty());
    }
};

QTEST_GUILESS_MAIN(TstCheckpoint)
#include "tst_checkpoint.moc"
