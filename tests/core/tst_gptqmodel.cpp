// Sequential whole-model GPTQ on two real models (stories260K, code-3m): every quantized tensor beats round to
// nearest on its proxy error tr((W - Q) H (W - Q)^T), and the quantized model's output distribution is closer
// to the original's (mean KL divergence over held-out text, computed here independently) than the plan's
// round-to-nearest model at the same formats.

#include "core/infer/evaluate.h"
#include "core/infer/forward.h"
#include "core/infer/gptqmodel.h"
#include "core/model/model.h"
#include "core/util/error.h"
#include "core/util/fileio.h"

#include <QTest>

#include <cmath>
#include <set>

using namespace qs;

namespace {

const std::string kStories = QS_SAMPLE_DIR "/stories260K/stories260K.gguf";
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
    }
};

QTEST_GUILESS_MAIN(TestGptqModel)
#include "tst_gptqmodel.moc"
