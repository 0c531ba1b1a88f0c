// Sequential whole-model GPTQ on two real models (stories260K, code-3m): every quantized tensor beats round to
// nearest on its proxy error tr((W - Q) H (W - Q)^T), and the quantized model's output distribution is closer
// to the original's (mean KL divergence over held-out text, computed here independently) than the plan's
// round-to-nearest model at the same formats.

#include "core/infer/evaluate.h"
#include "core/infer/forward.h"
#include "core/infer/gptqmodel.h"
#include "core/model/dtype.h"
#include "core/quant/format.h"
#include "core/quant/int_quant.h"
#include "core/quant/quantize.h"
#include "core/model/model.h"
#include "core/util/error.h"
#include "core/util/fileio.h"

#include <QTemporaryDir>
#include <QTest>

#include <cmath>
#include <set>

using namespace qs;

namespace {

const std::string kStories = QS_SAMPLE_DIR "/stories260K/stories260K.gguf";
const std::string kStoriesHf = QS_SAMPLE_DIR "/stories260K/hf-f32";
const std::string kStoriesText = QS_SAMPLE_DIR "/eval/stories.txt";
const std::string kCode3m = QS_TEST_DATA "/code-3m/quantscope-code-3m-Q8_0.gguf";
const std::string kCodeText = QS_TEST_DATA "/eval/python-textwrap.txt";

// Every 2-D weight of the blocks in `format`.
Plan blockMatrices(const Model& model, const std::string& format)
{
    Plan plan;
    for (const auto& t : model.tensors())
        if (t.shape.size() == 2 && t.name.starts_with("blk."))
            plan.assign(t.name, format);
    return plan;
}

// The model's next-token log-probabilities (float64) for the sequences, one vector per position.
std::vector<std::vector<double>> logProbs(Transformer& t, const std::vector<std::vector<int32_t>>& sequences)
{
    std::vector<std::span<const int32_t>> spans(sequences.begin(), sequences.end());
    HiddenStates h = t.embed(spans);
    t.runLayers(h, 0, t.config().layers);
    const Eigen::MatrixXf logits = t.logits(h);
    std::vector<std::vector<double>> out;
    for (Eigen::Index c = 0; c < logits.cols(); ++c) {
        double mx = -INFINITY, s = 0;
        for (Eigen::Index i = 0; i < logits.rows(); ++i)
            mx = std::max(mx, double(logits(i, c)));
        for (Eigen::Index i = 0; i < logits.rows(); ++i)
            s += std::exp(double(logits(i, c)) - mx);
        std::vector<double> lp(size_t(logits.rows()));
        for (Eigen::Index i = 0; i < logits.rows(); ++i)
            lp[size_t(i)] = double(logits(i, c)) - mx - std::log(s);
        out.push_back(std::move(lp));
    }
    return out;
}

double meanKl(const std::vector<std::vector<double>>& p, const std::vector<std::vector<double>>& q)
{
    double sum = 0;
    for (size_t k = 0; k < p.size(); ++k)
        for (size_t i = 0; i < p[k].size(); ++i)
            sum += std::exp(p[k][i]) * (p[k][i] - q[k][i]);
    return sum / double(p.size());
}

struct Outcome {
    size_t tensors = 0;
    double klGptq = 0, klRtn = 0;
};

// Calibrates on the first part of the text and measures KL on sequences from the rest.
Outcome run(const std::string& modelPath, const std::string& textPath, const std::string& format, uint32_t ctx,
            bool actOrder)
{
    std::shared_ptr<const Model> model = openModel(modelPath);
    const auto tokens = evaluationTokens(*model, readRegularFile(textPath, 1 << 20, "text"));
    const size_t calibrationTokens = tokens.size() * 2 / 3;
    GptqModelParams p;
    p.model = model;
    p.plan = blockMatrices(*model, format);
    p.tokens.assign(tokens.begin(), tokens.begin() + ptrdiff_t(calibrationTokens));
    p.ctx = ctx;
    p.actOrder = actOrder;
    GptqModelJob job(p);
    std::vector<double> fractions;
    job.control().setProgressHandler([&](const JobProgress& pr) { fractions.push_back(pr.fraction); });
    if (job.run() != JobStatus::Succeeded)
        throw std::runtime_error(job.errorMessage());
    const GptqModelResult& r = job.result();
    if (fractions.empty() || fractions.back() != 1.0)
        throw std::runtime_error("no final progress");
    for (size_t i = 1; i < fractions.size(); ++i)
        if (fractions[i] < fractions[i - 1] - 1e-9)
            throw std::runtime_error("progress went back from " + std::to_string(fractions[i - 1]) + " to " +
                                     std::to_string(fractions[i]));

    Outcome o;
    o.tensors = r.tensors.size();
    std::set<std::string> seen;
    for (const auto& t : r.tensors) {
        seen.insert(t.tensor);
        if (!(t.result.proxyError < t.result.proxyErrorRtn))
            throw std::runtime_error(t.tensor + ": GPTQ's proxy error " + std::to_string(t.result.proxyError) +
                                     " is not below RTN's " + std::to_string(t.result.proxyErrorRtn));
        if (t.format != format)
            throw std::runtime_error("wrong format");
    }
    if (seen.size() != p.plan.assignments().size())
        throw std::runtime_error("not every planned tensor was quantized");

    // Held-out sequences: the rest of the text, BOS first.
    std::vector<std::vector<int32_t>> held;
    const uint32_t evalCtx = std::min<uint32_t>(ctx, 64);
    for (size_t s = calibrationTokens; s + evalCtx <= tokens.size(); s += evalCtx) {
        std::vector<int32_t> seq(tokens.begin() + ptrdiff_t(s), tokens.begin() + ptrdiff_t(s + evalCtx));
        seq[0] = tokens.front();
        held.push_back(std::move(seq));
    }
    if (held.empty())
        throw std::runtime_error("no held-out text");
    Transformer original(model);
    ForwardOptions withPlan;
    withPlan.plan = &p.plan;
    Transformer rtn(model, withPlan), gptq(model, withPlan);
    for (const auto& t : r.tensors)
        gptq.setWeightOverride(t.tensor, std::make_shared<const std::vector<float>>(t.result.dequantized));
    const auto base = logProbs(original, held);
    o.klRtn = meanKl(base, logProbs(rtn, held));
    o.klGptq = meanKl(base, logProbs(gptq, held));
    return o;
}

} // namespace

class TestGptqModel : public QObject {
    Q_OBJECT

private slots:
    void stories260K_data()
    {
        QTest::addColumn<QString>("format");
        QTest::addColumn<bool>("actOrder");
        QTest::newRow("INT4-g32-asym") << "INT4-g32-asym" << false;
        QTest::newRow("INT3-g64-asym act-order") << "INT3-g64-asym" << true;
        QTest::newRow("INT4-ch-sym") << "INT4-ch-sym" << false;
    }
    void stories260K()
    {
        QFETCH(QString, format);
        QFETCH(bool, actOrder);
        const Outcome o = run(kStories, kStoriesText, format.toStdString(), 128, actOrder);
        QCOMPARE(o.tensors, size_t(5 * 7));
        qInfo("stories260K %s: mean KL GPTQ %.5f, RTN %.5f", qPrintable(format), o.klGptq, o.klRtn);
        QVERIFY(o.klGptq < o.klRtn);
    }

    void code3m_data()
    {
        QTest::addColumn<QString>("format");
        QTest::newRow("INT4-g128-asym") << "INT4-g128-asym";
        QTest::newRow("INT3-g128-sym") << "INT3-g128-sym";
    }
    void code3m()
    {
        QFETCH(QString, format);
        const Outcome o = run(kCode3m, kCodeText, format.toStdString(), 128, false);
        QCOMPARE(o.tensors, size_t(4 * 7));
        qInfo("code-3m %s: mean KL GPTQ %.5f, RTN %.5f", qPrintable(format), o.klGptq, o.klRtn);
        QVERIFY(o.klGptq < o.klRtn);
    }

    // GPTQ's codes written through the quantize job: the reopened checkpoint decodes to exactly
    // fp16(scale) * (code - zero) of the GPTQ result (act-order g_idx included), not to round to nearest.
    void writesCheckpoints()
    {
        std::shared_ptr<const Model> model = openModel(kStoriesHf);
        Plan plan;
        for (const auto& t : model->tensors())
            if (t.shape.size() == 2 && t.name.find(".layers.") != std::string::npos)
                plan.assign(t.name, t.columns() % 32 == 0 ? "INT4-g32-asym" : "INT4-ch-asym");
        for (const bool actOrder : {true, false}) {
            GptqModelParams g;
            g.model = model;
            g.plan = plan;
            // The safetensors folder has no tokenizer files: the GGUF's vocabulary is the same.
            g.tokens = evaluationTokens(*openModel(kStories), readRegularFile(kStoriesText, 1 << 20, "text"));
            g.ctx = 128;
            g.actOrder = actOrder;
            const GptqModelResult r = gptqQuantizeModel(g);
            QCOMPARE(r.tensors.size(), plan.assignments().size());
            const auto codes = precomputedCodes(r);
            for (const QuantizeTarget target :
                 {QuantizeTarget::Gptq, QuantizeTarget::CompressedTensors, QuantizeTarget::FakeQuant}) {
                QTemporaryDir tmp;
                QuantizeParams p;
                p.model = model;
                p.plan = plan;
                p.target = target;
                p.output = tmp.path().toStdString() + "/out";
                p.precomputedCodes = codes;
                QuantizeJob job(p);
                const JobStatus status = job.run();
                if (target == QuantizeTarget::CompressedTensors && actOrder) {
                    QCOMPARE(status, JobStatus::Failed); // no g_idx in compressed-tensors
                    QVERIFY(job.errorMessage().find("act-order") != std::string::npos);
                    continue;
                }
                QVERIFY2(status == JobStatus::Succeeded, job.errorMessage().c_str());
                auto back = openModel(p.output);
                size_t checked = 0, differsFromGptq = 0, differsFromRtn = 0;
                for (const auto& t : r.tensors) {
                    const TensorInfo* b = back->find(t.tensor);
                    QVERIFY2(b, t.tensor.c_str());
                    std::vector<float> got(b->elements());
                    back->decode(*b, 0, got.size(), got.data());
                    const GptqResult& q = t.result;
                    std::vector<float> w(b->elements()), rtn(b->elements());
                    model->decode(*model->find(t.tensor), 0, w.size(), w.data());
                    const auto cfg = gptqConfigForFormat(t.format);
                    intRoundTrip(IntQuantConfig{cfg->bits, cfg->groupSize, cfg->symmetric}, w.data(),
                                 uint64_t(q.rows), uint64_t(q.cols), rtn.data());
                    for (int i = 0; i < q.rows; ++i)
                        for (int j = 0; j < q.cols; ++j) {
                            const size_t at = size_t(i) * q.cols + j, gi = size_t(q.gIdx[j]) * q.rows + i;
                            if (q.zeros[gi] == 0 && target == QuantizeTarget::Gptq)
                                continue; // GPTQ v1 cannot store a zero point of 0 (the writer warns)
                            const float scale = target == QuantizeTarget::Gptq
                                                    ? halfToFloat(floatToHalf(q.scales[gi]))
                                                    : q.scales[gi];
                            const float want = scale * (float(q.codes[at]) - q.zeros[gi]);
                            QVERIFY2(std::abs(got[at] - want) <= 1e-6f * scale, t.tensor.c_str());
                            if (target == QuantizeTarget::FakeQuant) // F32 in, F32 out: GPTQ's values exactly
                                QCOMPARE(got[at], q.dequantized[at]);
                            differsFromGptq += std::abs(q.dequantized[at] - got[at]) > 0.01f * scale;
                            differsFromRtn += std::abs(rtn[at] - got[at]) > 0.5f * scale;
                            ++checked;
                        }
                }
                QVERIFY(checked > 100000);
                QCOMPARE(differsFromGptq, size_t(0));
                QVERIFY(differsFromRtn > checked / 20); // GPTQ moves many codes away from the nearest
            }
        }
        // GGUF keeps ggml's own rounding: GPTQ codes are refused with the reason.
        QuantizeParams gguf;
        gguf.model = openModel(kStories);
        gguf.plan = blockMatrices(*gguf.model, "Q4_K");
        gguf.target = QuantizeTarget::Gguf;
        gguf.output = "/tmp/unused.gguf";
        gguf.precomputedCodes = std::make_shared<const PrecomputedCodes>(
            PrecomputedCodes{{"blk.0.attn_q.weight", std::make_shared<const PrecomputedIntCodes>()}});
        bool refused = false;
        for (const auto& problem : validateQuantize(gguf))
            refused |= problem.reason.find("cannot be written to GGUF") != std::string::npos;
        QVERIFY(refused);
    }

    // A plan whose tier names GPTQ: the quantize job runs the calibration pass itself (the GUI's path) and
    // writes exactly what the precomputed codes give; tensors of the other tiers keep round to nearest.
    void jobRunsGptqFromTierMethods()
    {
        std::shared_ptr<const Model> model = openModel(kStoriesHf);
        Plan plan;
        plan.addTier("INT4-ch-asym");
        for (const auto& t : model->tensors())
            if (t.shape.size() == 2 && t.name.find(".layers.") != std::string::npos)
                plan.assign(t.name, t.name.find("mlp") != std::string::npos ? "INT4-ch-asym" : "INT8-ch-sym");
        plan.addTier("INT8-ch-sym");
        QVERIFY(plan.setTierMethod("INT4-ch-asym", QuantMethod::Gptq));
        const std::vector<int32_t> tokens =
            evaluationTokens(*openModel(kStories), readRegularFile(kStoriesText, 1 << 20, "text"));
        QTemporaryDir tmp;
        QuantizeParams p;
        p.model = model;
        p.plan = plan;
        p.target = QuantizeTarget::FakeQuant;
        p.output = tmp.path().toStdString() + "/job";
        p.calibrationTokens = tokens;
        p.calibrationCtx = 128;
        p.calibrationChunks = 2;
        QuantizeJob job(p);
        QVERIFY2(job.run() == JobStatus::Succeeded, job.errorMessage().c_str());
        QVERIFY(job.result().methodNotes.front().find("15 tensors quantized with GPTQ") != std::string::npos);

        // The same GPTQ pass by hand over the GPTQ tier's tensors only.
        GptqModelParams g;
        g.model = model;
        for (const auto& [tensor, format] : plan.assignments())
            if (format == "INT4-ch-asym")
                g.plan.assign(tensor, format);
        g.tokens = tokens;
        g.ctx = 128;
        g.maxSequences = 2;
        const GptqModelResult r = gptqQuantizeModel(g);
        auto back = openModel(p.output);
        for (const auto& t : r.tensors) {
            std::vector<float> got(t.result.dequantized.size());
            back->decode(*back->find(t.tensor), 0, got.size(), got.data());
            for (size_t i = 0; i < got.size(); ++i)
                QCOMPARE(got[i], t.result.dequantized[i]);
        }
        // An INT8 tensor of the RTN tier: the format's own round trip.
        const std::string q = "model.layers.0.self_attn.q_proj.weight";
        const TensorInfo& src = *model->find(q);
        std::vector<float> w(src.elements()), rtn(src.elements()), got(src.elements());
        model->decode(src, 0, w.size(), w.data());
        findFormat("INT8-ch-sym")->roundTrip(w.data(), src.rows(), src.columns(), rtn.data());
        back->decode(*back->find(q), 0, got.size(), got.data());
        QVERIFY(got == rtn);

        // GPTQ and AWQ tiers in one plan: refused, saying why.
        QVERIFY(plan.setTierMethod("INT8-ch-sym", QuantMethod::Awq));
        p.plan = plan;
        bool refused = false;
        for (const auto& problem : validateQuantize(p))
            refused |= problem.reason.find("GPTQ and AWQ tiers") != std::string::npos;
        QVERIFY(refused);
    }

    void errors()
    {
        std::shared_ptr<const Model> model = openModel(kStories);
        GptqModelParams p;
        p.model = model;
        p.plan = blockMatrices(*model, "INT4-g32-asym");
        p.text = "Once upon a time";
        p.ctx = 128;
        GptqModelJob shortText(p);
        QCOMPARE(shortText.run(), JobStatus::Failed);
        QVERIFY(shortText.errorMessage().find("tokens") != std::string::npos);
        p.text = readRegularFile(kStoriesText, 1 << 20, "text");
        GptqModelJob cancelled(p);
        cancelled.cancel();
        QCOMPARE(cancelled.run(), JobStatus::Cancelled);
        // A cancel in the middle (from the progress handler, inside some tensor's GPTQ sweep).
        GptqModelJob midway(p);
        double last = 0;
        midway.control().setProgressHandler([&](const JobProgress& pr) {
            last = pr.fraction;
            if (pr.fraction > 0.4)
                midway.cancel();
        });
        QCOMPARE(midway.run(), JobStatus::Cancelled);
        QVERIFY(last < 0.6);
    }
};

QTEST_GUILESS_MAIN(TestGptqModel)
#include "tst_gptqmodel.moc"
