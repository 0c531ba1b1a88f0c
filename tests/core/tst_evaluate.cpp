// The evaluation job against independent computations: llama-perplexity's chunking done by hand in the test,
// log-softmax and KL divergence in float64 of the forward pass's logits, a no-op plan (KL exactly 0), a 4-bit
// plan (KL > 0, equal to the hand computation), the top-k baseline approximation, baseline reuse, cancel,
// and the refusals (context above the model's maximum, text that is not UTF-8, text too short).
#include "core/infer/evaluate.h"
#include "core/kl_reference.h"
#include "core/stories_reference.h"
#include "core/infer/forward.h"
#include "core/model/model.h"
#include "core/text/tokenizer.h"
#include "core/util/error.h"
#include "core/util/fileio.h"

#include <QTemporaryDir>
#include <QTest>
#include <algorithm>
#include <cmath>

namespace {

const std::string kStories = QS_SAMPLE_DIR "/stories260K/stories260K.gguf";
const std::string kStoriesText = QS_SAMPLE_DIR "/eval/stories.txt";
const std::string kCode3m = QS_TEST_DATA "/code-3m/quantscope-code-3m-Q8_0.gguf";
const std::string kCodeText = QS_TEST_DATA "/eval/python-textwrap.txt";

std::string readText(const std::string& path)
{
    return qs::readRegularFile(path, 1 << 20, "text");
}

// Every 2-D weight in `format`.
qs::Plan allMatrices(const qs::Model& model, const std::string& format)
{
    qs::Plan plan;
    for (const auto& t : model.tensors())
        if (t.shape.size() == 2)
            plan.assign(t.name, format);
    return plan;
}

qs::EvalParams evalParams(std::shared_ptr<const qs::Model> model, const std::string& textPath, uint32_t ctx,
                          uint32_t maxChunks)
{
    qs::EvalParams p;
    p.model = std::move(model);
    p.text = readText(textPath);
    p.ctx = ctx;
    p.maxChunks = maxChunks;
    return p;
}

bool close(double a, double b, double rel)
{
    return std::abs(a - b) <= rel * std::max(std::abs(a), std::abs(b));
}

} // namespace

class TestEvaluate : public QObject {
    Q_OBJECT

private slots:
    void percentileAndMedianAsLlamaCpp()
    {
        const std::vector<float> odd = {1, 2, 3, 4, 10};
        QCOMPARE(qs::sortedMedian(odd), 3.0);
        QCOMPARE(qs::sortedMedian({1, 2, 3, 5}), 2.5);
        // p = 0.99 * 4 = 3.96: 0.04 * 4 + 0.96 * 10
        QVERIFY(std::abs(qs::sortedPercentile(odd, 0.99) - (0.04 * 4 + 0.96 * 10)) < 1e-6);
        QCOMPARE(qs::sortedPercentile(odd, 1.0), 10.0);
        QCOMPARE(qs::sortedPercentile(odd, 0.0), 1.0);
    }

    void tokensAreTheTokenizersWithBos()
    {
        auto model = qs::openModel(kStories);
        const std::string text = readText(kStoriesText);
        bool bos = false;
        const auto ids = qs::evaluationTokens(*model, text, &bos);
        QVERIFY(bos);
        const auto tok = qs::Tokenizer::fromModel(*model);
        QCOMPARE(ids, tok->encode(text, true));
        QCOMPARE(ids.front(), *tok->bos());
        QVERIFY(ids.size() > 1024); // enough for the tests below
    }

    // Special-token text in an evaluation file is text (llama-perplexity tokenizes with parse_special off).
    void specialTokenTextIsPlainText()
    {
        auto model = qs::openModel(kCode3m);
        const auto ids = qs::evaluationTokens(*model, "x = 1\n<|end_of_text|>\ny = 2\n");
        QCOMPARE(ids.front(), 0);
        QVERIFY(std::count(ids.begin(), ids.end(), 1) == 0); // 1 = <|end_of_text|>
        const auto tok = qs::Tokenizer::fromModel(*model);
        QCOMPARE(tok->encode("<|end_of_text|>", false), std::vector<int32_t>{1}); // the default parses it
    }

    void perplexityMatchesHandComputation()
    {
        std::shared_ptr<const qs::Model> model = qs::openModel(kStories);
        qs::EvalParams p = evalParams(model, kStoriesText, 64, 3);
        const qs::EvalResult r = qs::evaluate(p);
        const auto tokens = qs::evaluationTokens(*model, p.text);
        QCOMPARE(r.ctx, 64u);
        QCOMPARE(r.chunks, 3u);
        QCOMPARE(r.tokens, tokens.size());
        QCOMPARE(r.positions, size_t(3 * (64 - 1 - 32)));
        QVERIFY(!r.quantized);
        const qs::Plan none;
        const Reference ref = reference(model, tokens, 64, 3, 1, &none);
        QCOMPARE(ref.positions, r.positions);
        QVERIFY2(close(r.perplexity, ref.ppl, 1e-9),
                 qPrintable(QString::number(r.perplexity) + " vs " + QString::number(ref.ppl)));
        QVERIFY(r.perplexity > 1.0 && r.perplexity < 512.0);
        // Every whole chunk without a limit: tokens / ctx of them.
        p.maxChunks = 0;
        p.ctx = 256;
        const qs::EvalResult all = qs::evaluate(p);
        QCOMPARE(all.chunks, uint32_t(tokens.size() / 256));
    }

    void noOpPlanHasZeroDivergence()
    {
        std::shared_ptr<const qs::Model> model = qs::openModel(kStories);
        qs::EvalParams p = evalParams(model, kStoriesText, 64, 2);
        p.plan = qs::Plan{};
        const qs::EvalResult r = qs::evaluate(p);
        QVERIFY(r.quantized);
        QVERIFY(r.kldExact);
        QCOMPARE(r.kldMean, 0.0);
        QCOMPARE(r.kldMax, 0.0);
        QCOMPARE(r.sameTop, 1.0);
        QCOMPARE(r.perplexityQuantized, r.perplexity);
        QCOMPARE(r.kld.size(), r.positions);
        QCOMPARE(r.perChunk.size(), size_t(2));
        QCOMPARE(r.perChunk[1].sameTop, 1.0);
    }

    void fourBitPlanMatchesHandComputation()
    {
        std::shared_ptr<const qs::Model> model = qs::openModel(kCode3m);
        qs::EvalParams p = evalParams(model, kCodeText, 128, 2);
        p.plan = allMatrices(*model, "Q4_0");
        const qs::EvalResult r = qs::evaluate(p);
        const auto tokens = qs::evaluationTokens(*model, p.text);
        QCOMPARE(tokens.front(), 0); // code-3m's BOS
        const Reference ref = reference(model, tokens, 128, 2, 0, &*p.plan);
        QVERIFY(r.kldMean > 1e-4); // 4 bits change the distribution
        QVERIFY(r.perplexityQuantized != r.perplexity);
        QVERIFY2(close(r.perplexity, ref.ppl, 1e-9), qPrintable(QString::number(r.perplexity)));
        QVERIFY2(close(r.perplexityQuantized, ref.pplQ, 1e-9),
                 qPrintable(QString::number(r.perplexityQuantized)));
        // Log-probabilities are rounded to float before the KL sum: agreement to 1e-5 relative.
        QVERIFY2(close(r.kldMean, ref.kldMean, 1e-5),
                 qPrintable(QString::number(r.kldMean) + " vs " + QString::number(ref.kldMean)));
        QVERIFY(close(r.kldMax, ref.kldMax, 1e-4));
        QCOMPARE(r.sameTop, ref.sameTop);
        QVERIFY(r.sameTop > 0.3 && r.sameTop <= 1.0);
        QVERIFY(r.kldMedian <= r.kldP99 && r.kldP99 <= r.kldMax);
        // Per chunk: the means of the chunks average to the total (equal sizes).
        QCOMPARE(r.perChunk.size(), size_t(2));
        QVERIFY(close((r.perChunk[0].kldMean + r.perChunk[1].kldMean) / 2, r.kldMean, 1e-9));
        QVERIFY(close(std::max(r.perChunk[0].kldMax, r.perChunk[1].kldMax), r.kldMax, 1e-6));

        // The original is not recomputed for a second plan: the baseline is reused and gives the same
        // numbers.
        qs::EvalParams again = p;
        again.baseline = r.baseline;
        again.plan = allMatrices(*model, "Q8_0");
        const qs::EvalResult r8 = qs::evaluate(again);
        QVERIFY(r8.baselineReused);
        QCOMPARE(r8.perplexity, r.perplexity);
        QVERIFY(r8.kldMean < r.kldMean / 4); // 8 bits are much closer than 4
        // A baseline for other input is not reused.
        again.ctx = 64;
        QVERIFY(!qs::evaluate(again).baselineReused);

        // Top-k baseline: a lower bound of the exact KL, close to it.
        qs::EvalParams topk = p;
        topk.baselineBytes = 2 * 63 * 64 * 8; // 64 entries per position
        const qs::EvalResult a = qs::evaluate(topk);
        QVERIFY(!a.kldExact);
        QCOMPARE(a.baselineTopK, 64u);
        QCOMPARE(a.perplexity, r.perplexity);
        QCOMPARE(a.sameTop, r.sameTop);
        QVERIFY2(a.kldMean <= r.kldMean * (1 + 1e-6) && a.kldMean >= 0.8 * r.kldMean,
                 qPrintable(QString::number(a.kldMean) + " vs " + QString::number(r.kldMean)));
    }

    void refusals()
    {
        std::shared_ptr<const qs::Model> model = qs::openModel(kCode3m);
        qs::EvalParams p = evalParams(model, kCodeText, 257, 0); // code-3m's maximum is 256
        try {
            qs::evaluate(p);
            QFAIL("a context above the maximum was accepted");
        } catch (const qs::Error& e) {
            QCOMPARE(e.code(), qs::ErrorCode::BadValue);
            QVERIFY2(std::string(e.what()).find("maximum of 256") != std::string::npos, e.what());
        }
        p.ctx = 0; // the default: min(512, 256)
        p.maxChunks = 1;
        QCOMPARE(qs::evaluate(p).ctx, 256u);

        p.text = readText(QS_TEST_DATA "/eval/latin1.txt");
        try {
            qs::evaluate(p);
            QFAIL("text that is not UTF-8 was accepted");
        } catch (const qs::Error& e) {
            QVERIFY2(std::string(e.what()).find("not valid UTF-8 (first invalid byte at offset 6)") !=
                         std::string::npos,
                     e.what());
        }
        p.text = "def f():\n    return 1\n";
        p.ctx = 64;
        try {
            qs::evaluate(p);
            QFAIL("a text shorter than two chunks was accepted");
        } catch (const qs::Error& e) {
            QVERIFY2(std::string(e.what()).find("needs at least 128") != std::string::npos, e.what());
        }
    }

    // The importance matrix of blk.0's attention input, computed by hand: RMSNorm(embedding row) * attn_norm
    // for every token of the chunks (BOS first), mean of squares per input feature.
    void calibrationMatchesHandComputation()
    {
        std::shared_ptr<const qs::Model> model = qs::openModel(kStories);
        qs::CalibrateParams p;
        p.model = model;
        p.text = readText(kStoriesText);
        p.ctx = 64;
        p.maxChunks = 2;
        const qs::CalibrateResult r = qs::calibrate(p);
        QCOMPARE(r.chunks, 2u);
        QCOMPARE(r.entries.size(), size_t(35)); // 5 blocks x 7 matrices; no output head, no embedding
        auto entry = [&r](const std::string& name) -> const qs::ImportanceEntry& {
            return *std::find_if(r.entries.begin(), r.entries.end(),
                                 [&](const qs::ImportanceEntry& e) { return e.name == name; });
        };
        const qs::ImportanceEntry& q = entry("blk.0.attn_q.weight");
        QCOMPARE(q.columns, uint64_t(64));
        QCOMPARE(q.counts, std::vector<float>{128.0f});
        QCOMPARE(entry("blk.0.attn_v.weight").values, q.values); // same input
        QCOMPARE(entry("blk.2.ffn_down.weight").columns, uint64_t(172));

        std::vector<double> sum2(64, 0.0);
        for (const std::vector<double>& y : qstest::storiesAttentionInputs(*model, p.text, 64, 2))
            for (size_t k = 0; k < 64; ++k)
                sum2[k] += y[k] * y[k];
        for (int k = 0; k < 64; ++k)
            QVERIFY2(close(q.values[size_t(k)], sum2[size_t(k)] / 128, 1e-4), qPrintable(QString::number(k)));

        // The legacy .dat file reads back through the importance reader (sensitivity, quantize).
        QTemporaryDir dir;
        const std::string path = dir.filePath(QStringLiteral("s.dat")).toStdString();
        qs::writeImportanceLegacy(r, path, "stories.txt");
        const qs::ImportanceMatrix m = qs::ImportanceMatrix::load(path);
        QCOMPARE(m.format(), qs::ImportanceFileFormat::LegacyDat);
        QCOMPARE(m.entries().size(), size_t(35));
        QCOMPARE(m.chunkCount(), uint64_t(2));
        QCOMPARE(m.datasets(), std::vector<std::string>{"stories.txt"});
        const auto back = m.importanceFor("blk.0.attn_q.weight", 64);
        QCOMPARE(back.size(), size_t(64));
        for (size_t k = 0; k < 64; ++k)
            QVERIFY(close(back[k], q.values[k], 1e-6));

        // And the GGUF layout (sums and counts), read back the same.
        const std::string ggufPath = dir.filePath(QStringLiteral("s.gguf")).toStdString();
        qs::writeImportanceGguf(r, ggufPath, "stories.txt");
        const qs::ImportanceMatrix g = qs::ImportanceMatrix::load(ggufPath);
        QCOMPARE(g.format(), qs::ImportanceFileFormat::Gguf);
        QCOMPARE(g.entries().size(), size_t(35));
        QCOMPARE(g.chunkCount(), uint64_t(2));
        QCOMPARE(g.datasets(), std::vector<std::string>{"stories.txt"});
        const auto fromGguf = g.importanceFor("blk.0.attn_q.weight", 64);
        QCOMPARE(fromGguf.size(), size_t(64));
        for (size_t k = 0; k < 64; ++k)
            QVERIFY(close(fromGguf[k], q.values[k], 1e-6));
        QCOMPARE(g.find("blk.4.ffn_down.weight")->counts, std::vector<float>{128.0f});

        p.text = "Once upon a time.";
        try {
            qs::calibrate(p);
            QFAIL("a text shorter than one chunk was accepted");
        } catch (const qs::Error& e) {
            QVERIFY2(std::string(e.what()).find("needs at least 64 (one chunk)") != std::string::npos,
                     e.what());
        }
    }

    void cancelEndsAsCancelled()
    {
        qs::EvalParams p = evalParams(qs::openModel(kStories), kStoriesText, 64, 0);
        p.plan = qs::Plan{};
        qs::EvalJob job(std::move(p));
        int reports = 0;
        job.control().setProgressHandler([&](const qs::JobProgress&) {
            if (++reports == 3)
                job.cancel();
        });
        QCOMPARE(job.run(), qs::JobStatus::Cancelled);
        QCOMPARE(reports, 3); // the next linear layer noticed the cancel
    }
};

QTEST_GUILESS_MAIN(TestEvaluate)
#include "tst_evaluate.moc"
