// GPTQ into ggml block types (core/quant/gptq_ggml.h, GptqConfig::ggml):
// - the block codecs read scales and levels exactly as ggml's decoder does and pack levels back into the same
//   bytes (checked against our ggml decoder, which is bit-exact with ggml's reference, tst_ggml_decode);
// - with H = identity (no error feedback) GPTQ keeps the quantizer's scale bytes and rounds every value to the
//   nearest level of that grid: never further from the weight than round to nearest, and for Q4_0 / Q8_0 the
//   same bytes except where fp16 rounding of the scale moved a value across a rounding boundary;
// - on code-3m's real layers with their real activations (whole-model sequential GPTQ), every tensor's packed
//   blocks decode to exactly the values GPTQ reports and its proxy error tr((W-Q) H (W-Q)^T) is below round
//   to nearest's, for every supported type;
// - through the quantize job into GGUF: the file holds GPTQ's blocks, and the model's mean KL divergence from
//   the original on held-out text (the evaluate job) is below that of the round-to-nearest GGUF of the same plan.

#include "core/infer/evaluate.h"
#include "core/infer/gptqmodel.h"
#include "core/model/model.h"
#include "core/quant/ggml.h"
#include "core/quant/gptq.h"
#include "core/quant/gptq_ggml.h"
#include "core/quant/quantize.h"
#include "core/util/error.h"
#include "core/util/fileio.h"

#include <QTemporaryDir>
#include <QTest>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>

using namespace qs;

namespace {

const std::string kCode3m = QS_TEST_DATA "/code-3m/quantscope-code-3m-Q8_0.gguf";
const std::string kStories = QS_SAMPLE_DIR "/stories260K/stories260K.gguf";
const std::string kStoriesText = QS_SAMPLE_DIR "/eval/stories.txt";
const std::string kCodeText = QS_TEST_DATA "/eval/python-textwrap.txt";

const DType kTypes[] = {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0,   DType::Q2_K,
                        DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::IQ4_NL, DType::IQ4_XS};

std::vector<float> weights(int rows, int cols, uint32_t seed)
{
    std::mt19937 rng(seed);
    std::normal_distribution<float> n(0.0f, 0.02f);
    std::vector<float> v(size_t(rows) * cols);
    for (float& x : v)
        x = n(rng);
    for (size_t i = 0; i < v.size(); i += 97) // a few outliers, as real layers have
        v[i] *= 8.0f;
    return v;
}

std::vector<float> realWeights(const Model& m, const std::string& name, int& rows, int& cols)
{
    const TensorInfo* t = m.find(name);
    if (!t)
        throw std::runtime_error("missing " + name);
    rows = int(t->rows());
    cols = int(t->columns());
    std::vector<float> w(t->elements());
    m.decode(*t, 0, w.size(), w.data());
    return w;
}

std::vector<float> decodeAll(DType type, const std::vector<uint8_t>& bytes, size_t n)
{
    std::vector<float> out(n);
    ggml::decode(type, bytes.data(), n, out.data());
    return out;
}

bool sameFloats(const std::vector<float>& a, const std::vector<float>& b)
{
    if (a.size() != b.size())
        return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (!(a[i] == b[i]))
            return false;
    return true;
}

// Every 2-D weight of the blocks whose rows are whole blocks of `format`.
Plan blockMatrices(const Model& model, const std::string& format)
{
    Plan plan;
    const uint32_t block = dtypeInfo(*gptqConfigForFormat(format)->ggml).blockElements;
    for (const auto& t : model.tensors())
        if (t.shape.size() == 2 && t.name.starts_with("blk.") && t.columns() % block == 0)
            plan.assign(t.name, format);
    return plan;
}

// Whole-model GPTQ of every block matrix in `type`: the packed blocks decode to GPTQ's values and every
// tensor's proxy error is below round to nearest's (or both are 0: an exact re-quantization). Returns
// the tensors quantized.
size_t checkWholeModel(const std::string& modelPath, const std::string& textPath, DType type)
{
    std::shared_ptr<const Model> model = openModel(modelPath);
    GptqModelParams p;
    p.model = model;
    p.plan = blockMatrices(*model, dtypeName(type));
    p.tokens = evaluationTokens(*model, readRegularFile(textPath, 1 << 20, "text"));
    p.ctx = 128;
    const GptqModelResult r = gptqQuantizeModel(p);
    double worst = 0, sumRatio = 0;
    size_t exact = 0;
    for (const auto& x : r.tensors) {
        const GptqResult& g = x.result;
        if (!sameFloats(decodeAll(type, g.ggmlBlocks, g.dequantized.size()), g.dequantized))
            throw std::runtime_error(x.tensor + ": the blocks do not decode to GPTQ's values");
        if (g.proxyErrorRtn == 0 && g.proxyError == 0) {
            ++exact;
            continue;
        }
        const double ratio = g.proxyError / g.proxyErrorRtn;
        if (!(ratio < 1.0))
            throw std::runtime_error(x.tensor + ": proxy error GPTQ / RTN " + std::to_string(ratio));
        worst = std::max(worst, ratio);
        sumRatio += ratio;
    }
    if (exact < r.tensors.size())
        qInfo("%s %s: proxy error GPTQ / RTN mean %.3f, worst %.3f over %zu tensors",
              std::filesystem::path(modelPath).stem().c_str(), dtypeName(type),
              sumRatio / double(r.tensors.size() - exact), worst, r.tensors.size() - exact);
    else
        qInfo("%s %s: every tensor exact (GPTQ and RTN proxy error 0)", std::filesystem::path(modelPath).stem().c_str(),
              dtypeName(type));
    if (precomputedGgml(r)->size() != r.tensors.size() || !precomputedCodes(r)->empty())
        throw std::runtime_error("precomputed blocks / codes");
    return r.tensors.size();
}

} // namespace

class TestGptqGgml : public QObject {
    Q_OBJECT

private slots:
    // Each codec on blocks our quantizer made (random and real weights, with and without importance):
    // levelValue over the unpacked levels is bit-identical to ggml::decode, and packing the levels into a
    // block whose level bits were scrambled restores the original bytes.
    void codecsMatchTheDecoder()
    {
        auto model = openModel(kCode3m);
        int rows = 0, cols = 0;
        const auto real = realWeights(*model, "blk.1.ffn_up.weight", rows, cols);
        const auto synthetic = weights(8, 512, 7);
        std::vector<float> importance(512);
        for (size_t i = 0; i < importance.size(); ++i)
            importance[i] = 0.1f + float(i % 13);
        for (const DType type : kTypes) {
            const gptq_ggml::Codec* c = gptq_ggml::codecFor(type);
            QVERIFY2(c, dtypeName(type));
            QCOMPARE(uint64_t(c->blockBytes), *dtypeByteSize(type, uint64_t(c->blockValues)));
            for (int variant = 0; variant < 3; ++variant) {
                const float* src = variant == 0 ? real.data() : synthetic.data();
                const size_t n = variant == 0 ? size_t(cols) * 8 : synthetic.size();
                const int rowLen = variant == 0 ? cols : 512;
                std::vector<uint8_t> bytes(*dtypeByteSize(type, n));
                ggml::quantize(type, src, n / rowLen, rowLen, bytes.data(), variant == 2 ? importance.data() : nullptr);
                const auto decoded = decodeAll(type, bytes, n);
                const int subs = c->blockValues / c->subValues;
                std::vector<float> a(static_cast<size_t>(subs)), b(static_cast<size_t>(subs));
                std::vector<uint8_t> levels(static_cast<size_t>(c->blockValues));
                for (size_t blk = 0; blk < n / size_t(c->blockValues); ++blk) {
                    unsigned char* p = bytes.data() + blk * size_t(c->blockBytes);
                    c->grid(p, a.data(), b.data());
                    c->unpack(p, levels.data());
                    for (int j = 0; j < c->blockValues; ++j) {
                        QVERIFY(levels[j] < c->levels);
                        const float v = gptq_ggml::levelValue(*c, a[j / c->subValues], b[j / c->subValues], levels[j]);
                        const float want = decoded[blk * size_t(c->blockValues) + size_t(j)];
                        if (!(v == want))
                            QFAIL(qPrintable(QStringLiteral("%1 block %2 value %3: %4 != %5")
                                                 .arg(dtypeName(type)).arg(blk).arg(j).arg(double(v)).arg(double(want))));
                    }
                    std::vector<uint8_t> scrambled(p, p + c->blockBytes);
                    std::vector<uint8_t> other(size_t(c->blockValues));
                    for (int j = 0; j < c->blockValues; ++j)
                        other[j] = uint8_t((levels[j] * 7 + 3) % c->levels);
                    c->pack(scrambled.data(), other.data());
                    std::vector<uint8_t> back(size_t(c->blockValues));
                    c->unpack(scrambled.data(), back.data());
                    QVERIFY(back == other);
                    c->pack(scrambled.data(), levels.data());
                    QVERIFY2(std::memcmp(scrambled.data(), p, size_t(c->blockBytes)) == 0, dtypeName(type));
                }
            }
        }
        QVERIFY(!gptq_ggml::codecFor(DType::MXFP4));
        QVERIFY(!gptq_ggml::codecFor(DType::IQ2_XXS));
    }

    // nearestLevel is the nearest level on the decoded grid (brute force over every level).
    void nearestLevelIsNearest()
    {
        std::mt19937 rng(3);
        std::uniform_real_distribution<float> u(-2.0f, 2.0f);
        for (const DType type : kTypes) {
            const gptq_ggml::Codec& c = *gptq_ggml::codecFor(type);
            for (int k = 0; k < 2000; ++k) {
                const float a = u(rng) * 0.1f, b = c.asymmetric ? -std::fabs(u(rng)) : 0.0f, x = u(rng);
                const int got = gptq_ggml::nearestLevel(c, a, b, x);
                float best = INFINITY;
                for (int l = 0; l < c.levels; ++l)
                    best = std::min(best, std::fabs(x - gptq_ggml::levelValue(c, a, b, l)));
                QCOMPARE(std::fabs(x - gptq_ggml::levelValue(c, a, b, got)), best);
            }
        }
    }

    // H = identity: no error reaches other columns, so each block's grid comes from the original values.
    void identityHessianIsRoundToNearestOnTheSameGrid()
    {
        const int rows = 16, cols = 512;
        const auto w = weights(rows, cols, 11);
        std::vector<float> h(size_t(cols) * cols, 0.0f);
        for (int i = 0; i < cols; ++i)
            h[size_t(i) * cols + i] = 1.0f;
        for (const DType type : kTypes) {
            const gptq_ggml::Codec& c = *gptq_ggml::codecFor(type);
            GptqConfig cfg;
            cfg.ggml = type;
            const GptqResult r = gptqQuantize(w.data(), rows, cols, h.data(), cfg);
            QCOMPARE(r.ggmlBlocks.size(), size_t(*dtypeByteSize(type, uint64_t(rows) * cols)));
            QVERIFY(sameFloats(decodeAll(type, r.ggmlBlocks, w.size()), r.dequantized));
            std::vector<uint8_t> rtn(r.ggmlBlocks.size());
            ggml::quantize(type, w.data(), rows, cols, rtn.data());
            const auto rtnValues = decodeAll(type, rtn, w.size());
            // The same bytes once RTN's levels are replaced by GPTQ's: the grids (scale bytes) are RTN's.
            std::vector<uint8_t> levels(size_t(c.blockValues));
            size_t differ = 0;
            for (size_t blk = 0; blk < rtn.size() / size_t(c.blockBytes); ++blk) {
                unsigned char* p = rtn.data() + blk * size_t(c.blockBytes);
                const unsigned char* g = r.ggmlBlocks.data() + blk * size_t(c.blockBytes);
                c.unpack(g, levels.data());
                std::vector<uint8_t> own(size_t(c.blockValues));
                c.unpack(p, own.data());
                for (int j = 0; j < c.blockValues; ++j)
                    differ += own[j] != levels[j];
                c.pack(p, levels.data());
                QVERIFY2(std::memcmp(p, g, size_t(c.blockBytes)) == 0, dtypeName(type));
            }
            // Never further from the weight than round to nearest; the proxy error (= squared error here,
            // times 1) is no larger.
            for (size_t i = 0; i < w.size(); ++i)
                QVERIFY(std::fabs(w[i] - r.dequantized[i]) <= std::fabs(w[i] - rtnValues[i]));
            QVERIFY(r.proxyError <= r.proxyErrorRtn);
            qInfo("%s, H = I: %zu of %zu levels differ from RTN's (each now nearer); squared error %.6g vs %.6g",
                  dtypeName(type), differ, w.size(), r.proxyError, r.proxyErrorRtn);
            if (type == DType::Q4_0)
                QVERIFY(differ < w.size() / 100); // only where the fp16 scale moved a rounding boundary
            if (type == DType::Q8_0)
                QVERIFY(differ < w.size() / 10);
        }
    }

    // Q4_0 and Q8_0 from values no scale rounding can disturb (every block's maximum a power of two,
    // every value on the grid): exactly round-to-nearest's bytes.
    void identityHessianOnGridValuesGivesRtnBytes()
    {
        const int rows = 4, cols = 256;
        std::vector<float> h(size_t(cols) * cols, 0.0f);
        for (int i = 0; i < cols; ++i)
            h[size_t(i) * cols + i] = 1.0f;
        std::mt19937 rng(5);
        for (const auto& [type, levels] : {std::pair{DType::Q4_0, 8}, std::pair{DType::Q8_0, 127}}) {
            std::vector<float> w(size_t(rows) * cols);
            for (size_t i = 0; i < w.size(); ++i) {
                const bool first = i % 32 == 0; // the block's maximum: -levels * 2^-6 (Q4_0: d = max / -8)
                const int q = first ? -levels : int(rng() % uint32_t(2 * levels - 1)) - (levels - 1);
                w[i] = std::ldexp(float(q), -6);
            }
            GptqConfig cfg;
            cfg.ggml = type;
            const GptqResult r = gptqQuantize(w.data(), rows, cols, h.data(), cfg);
            std::vector<uint8_t> rtn(r.ggmlBlocks.size());
            ggml::quantize(type, w.data(), rows, cols, rtn.data());
            QVERIFY2(rtn == r.ggmlBlocks, dtypeName(type));
            QVERIFY(sameFloats(r.dequantized, w));
        }
    }

    // A full H from correlated inputs: static groups keep round to nearest's scale bytes (grids from the
    // unquantized W) with GPTQ's levels; with an importance vector the grids follow the weighted search. Both
    // decode to GPTQ's values and beat round to nearest (with the same importance) on the proxy error.
    void staticGroupsAndImportance()
    {
        const int rows = 32, cols = 512, samples = 2048;
        const auto w = weights(rows, cols, 21);
        std::mt19937 rng(4);
        std::normal_distribution<float> n(0.0f, 1.0f);
        std::vector<float> x(size_t(samples) * cols), z(16);
        for (int s = 0; s < samples; ++s) {
            for (float& v : z)
                v = n(rng);
            for (int j = 0; j < cols; ++j)
                x[size_t(s) * cols + j] = 0.5f * n(rng) + z[size_t(j % 16)] * (1.0f + float(j % 7));
        }
        HessianAccumulator acc(cols);
        acc.add(x.data(), samples);
        const auto h = acc.hessian();
        std::vector<float> importance(static_cast<size_t>(cols));
        for (int j = 0; j < cols; ++j)
            importance[size_t(j)] = h[size_t(j) * cols + j];
        for (const DType type : {DType::Q4_0, DType::Q4_K, DType::Q3_K, DType::IQ4_XS}) {
            const gptq_ggml::Codec& c = *gptq_ggml::codecFor(type);
            GptqConfig cfg;
            cfg.ggml = type;
            cfg.staticGroups = true;
            const GptqResult st = gptqQuantize(w.data(), rows, cols, h.data(), cfg);
            QVERIFY(sameFloats(decodeAll(type, st.ggmlBlocks, w.size()), st.dequantized));
            QVERIFY(st.proxyError < st.proxyErrorRtn);
            std::vector<uint8_t> rtn(st.ggmlBlocks.size());
            ggml::quantize(type, w.data(), rows, cols, rtn.data());
            std::vector<uint8_t> levels(static_cast<size_t>(c.blockValues));
            for (size_t blk = 0; blk < rtn.size() / size_t(c.blockBytes); ++blk) {
                c.unpack(st.ggmlBlocks.data() + blk * size_t(c.blockBytes), levels.data());
                c.pack(rtn.data() + blk * size_t(c.blockBytes), levels.data());
            }
            QVERIFY2(rtn == st.ggmlBlocks, dtypeName(type)); // RTN's scales, GPTQ's levels

            cfg.staticGroups = false;
            cfg.importance = importance;
            const GptqResult im = gptqQuantize(w.data(), rows, cols, h.data(), cfg);
            QVERIFY(sameFloats(decodeAll(type, im.ggmlBlocks, w.size()), im.dequantized));
            QVERIFY(im.proxyError < im.proxyErrorRtn);
            cfg.importance.clear();
            const GptqResult plain = gptqQuantize(w.data(), rows, cols, h.data(), cfg);
            QVERIFY(plain.ggmlBlocks != im.ggmlBlocks); // the importance changed the grids
            qInfo("%s: proxy error GPTQ / RTN: dynamic %.3f, static groups %.3f, with importance %.3f "
                  "(RTN with the same importance)",
                  dtypeName(type), plain.proxyError / plain.proxyErrorRtn, st.proxyError / st.proxyErrorRtn,
                  im.proxyError / im.proxyErrorRtn);
        }
    }

    void refusals()
    {
        const auto w = weights(4, 256, 1);
        std::vector<float> h(256 * 256, 0.0f);
        for (int i = 0; i < 256; ++i)
            h[size_t(i) * 256 + i] = 1.0f;
        GptqConfig c;
        c.ggml = DType::Q4_K;
        c.actOrder = true;
        try {
            gptqQuantize(w.data(), 4, 256, h.data(), c);
            QFAIL("act-order accepted");
        } catch (const Error& e) {
            QVERIFY(std::string(e.what()).find("act-order") != std::string::npos);
        }
        c.actOrder = false;
        QVERIFY_THROWS_EXCEPTION(Error, gptqQuantize(w.data(), 8, 128, h.data(), c)); // not whole super-blocks
        c.importance.assign(100, 1.0f);
        QVERIFY_THROWS_EXCEPTION(Error, gptqQuantize(w.data(), 4, 256, h.data(), c));
        c.importance.clear();
        c.ggml = DType::MXFP4;
        QVERIFY_THROWS_EXCEPTION(Error, gptqQuantize(w.data(), 4, 256, h.data(), c));
        const auto q4k = gptqConfigForFormat("Q4_K");
        QVERIFY(q4k && q4k->ggml == DType::Q4_K);
        QVERIFY(gptqConfigForFormat("iq4_xs") && gptqConfigForFormat("iq4_xs")->ggml == DType::IQ4_XS);
        QVERIFY(!gptqConfigForFormat("MXFP4"));
        QVERIFY(!gptqConfigForFormat("BF16"));
    }

    // Whole-model sequential GPTQ on code-3m, every supported type: real layers, real activations.
    void code3mEveryType_data()
    {
        QTest::addColumn<int>("type");
        for (const DType t : kTypes)
            QTest::newRow(dtypeName(t)) << int(t);
    }
    void code3mEveryType()
    {
        QFETCH(int, type);
        const DType t = DType(type);
        // code-3m's weights are Q8_0: re-quantizing them to Q8_0 is exact for RTN and GPTQ alike, so Q8_0
        // (and every 32-block type, for a second model) also runs on stories260K (F32).
        QCOMPARE(checkWholeModel(kCode3m, kCodeText, t), size_t(4 * 7));
        if (gptq_ggml::codecFor(t)->blockValues == 32)
            QCOMPARE(checkWholeModel(kStories, kStoriesText, t), size_t(5 * 6)); // ffn_down's 172 columns: no
        // Act-order cannot keep a ggml block's columns together: refused before any work.
        std::shared_ptr<const Model> model = openModel(kCode3m);
        GptqModelParams p;
        p.model = model;
        p.plan = blockMatrices(*model, dtypeName(t));
        p.text = readRegularFile(kCodeText, 1 << 20, "text");
        p.ctx = 128;
        p.actOrder = true;
        QVERIFY_THROWS_EXCEPTION(Error, gptqQuantizeModel(p));
    }

    // GPTQ into GGUF through the quantize job (the GUI's path: a GPTQ tier) against the RTN GGUF of the
    // same plan: lower mean KL divergence on held-out text, and the file holds exactly GPTQ's blocks.
    void ggufBeatsRtn_data()
    {
        QTest::addColumn<QString>("format");
        QTest::newRow("Q4_K") << "Q4_K";
        QTest::newRow("Q3_K") << "Q3_K";
        QTest::newRow("Q4_0") << "Q4_0";
    }
    void ggufBeatsRtn()
    {
        QFETCH(QString, format);
        const std::string f = format.toStdString();
        std::shared_ptr<const Model> model = openModel(kCode3m);
        const auto tokens = evaluationTokens(*model, readRegularFile(kCodeText, 1 << 20, "text"));
        const size_t split = tokens.size() * 2 / 3;
        const std::vector<int32_t> calibration(tokens.begin(), tokens.begin() + ptrdiff_t(split));
        std::vector<int32_t> held{tokens.front()};
        held.insert(held.end(), tokens.begin() + ptrdiff_t(split), tokens.end());

        Plan plan = blockMatrices(*model, f);
        plan.addTier(f);
        QVERIFY(plan.setTierMethod(f, QuantMethod::Gptq));
        QTemporaryDir tmp;
        QuantizeParams q;
        q.model = model;
        q.plan = plan;
        q.target = QuantizeTarget::Gguf;
        q.allowRequantize = true; // code-3m is a Q8_0 GGUF
        q.calibrationTokens = calibration;
        q.calibrationCtx = 128;
        q.calibrationChunks = 0;
        q.output = tmp.path().toStdString() + "/gptq.gguf";
        QuantizeJob job(q);
        QVERIFY2(job.run() == JobStatus::Succeeded, job.errorMessage().c_str());
        QVERIFY(job.result().methodNotes.front().find("28 tensors quantized with GPTQ") != std::string::npos);

        QuantizeParams rtnParams = q;
        rtnParams.plan = blockMatrices(*model, f);
        rtnParams.output = tmp.path().toStdString() + "/rtn.gguf";
        QuantizeJob rtnJob(rtnParams);
        QVERIFY2(rtnJob.run() == JobStatus::Succeeded, rtnJob.errorMessage().c_str());

        // The file's blocks are GPTQ's: the same pass by hand gives the same values.
        GptqModelParams g;
        g.model = model;
        g.plan = blockMatrices(*model, f);
        g.tokens = calibration;
        g.ctx = 128;
        const GptqModelResult r = gptqQuantizeModel(g);
        auto gptqFile = openModel(q.output);
        auto rtnFile = openModel(rtnParams.output);
        size_t differFromRtn = 0, values = 0;
        for (const auto& t : r.tensors) {
            const TensorInfo* ti = gptqFile->find(t.tensor);
            QVERIFY(ti && ti->dtype == gptqConfigForFormat(f)->ggml);
            std::vector<float> got(ti->elements()), rtn(ti->elements());
            gptqFile->decode(*ti, 0, got.size(), got.data());
            QVERIFY2(sameFloats(got, t.result.dequantized), t.tensor.c_str());
            rtnFile->decode(*rtnFile->find(t.tensor), 0, rtn.size(), rtn.data());
            for (size_t i = 0; i < got.size(); ++i)
                differFromRtn += got[i] != rtn[i];
            values += got.size();
        }
        QVERIFY(differFromRtn > values / 10);

        auto kl = [&](const std::shared_ptr<const Model>& quantized) {
            EvalParams e;
            e.model = model;
            e.quantizedModel = quantized;
            e.tokens = held;
            e.ctx = 128;
            return evaluate(e).kldMean;
        };
        const double klGptq = kl(gptqFile), klRtn = kl(rtnFile);
        qInfo("code-3m %s GGUF: mean KL vs the original on held-out text: GPTQ %.5f, RTN %.5f (ratio %.3f)",
              f.c_str(), klGptq, klRtn, klGptq / klRtn);
        QVERIFY(klGptq < klRtn);
    }
};

QTEST_GUILESS_MAIN(TestGptqGgml)
#include "tst_gptq_ggml.moc"
