// The forward pass's llama.cpp arithmetic (ForwardOptions::llamaCppActivations): the input rounding of each
// weight type on hand-checked blocks, and evaluation against llama-perplexity itself. The reference figures
// were printed by llama.cpp's llama-perplexity (commit c392e50, February 2025, CPU backend, AVX2, -t 2) on
// the files in tests/data: `llama-perplexity -m quantscope-code-3m-Q8_0.gguf -f python-textwrap.txt -c 128`,
// and with `--kl-divergence` for the llama.cpp-Q4_K_M file our quantizer writes (byte-identical to that
// llama-quantize's output; see docs/inference.md).
#include "core/infer/evaluate.h"
#include "core/infer/forward.h"
#include "core/model/model.h"
#include "core/plan/modellayout.h"
#include "core/plan/plan.h"

#include <QTest>
#include <cmath>
#include <vector>

namespace {

const std::string kCode3m = QS_TEST_DATA "/code-3m/quantscope-code-3m-Q8_0.gguf";
const std::string kCodeText = QS_TEST_DATA "/eval/python-textwrap.txt";

// llama-perplexity's running estimate after each chunk ("[1]6.3088,[2]9.2348,...").
const double kLlamaRunning[20] = {6.3088, 9.2348, 7.7748,  8.5059,  8.0486,  8.1681,  8.1967,
                                  7.8943, 7.8865, 8.6890,  9.4021,  9.7877,  9.6560,  9.6079,
                                  10.3028, 10.4219, 10.2027, 9.8202, 9.1251, 8.9109};
constexpr double kLlamaKldMean = 0.020567; // Q4_K_M against the Q8_0 original
constexpr double kLlamaPplQ = 8.994191;

double meanRunningDifference(const qs::EvalResult& r)
{
    double logSum = 0, diff = 0;
    for (size_t i = 0; i < r.perChunk.size(); ++i) {
        logSum += std::log(r.perChunk[i].perplexity);
        diff += std::fabs(std::exp(logSum / double(i + 1)) / kLlamaRunning[i] - 1.0);
    }
    return diff / double(r.perChunk.size());
}

} // namespace

class TestLlamaCppArithmetic : public QObject {
    Q_OBJECT

private slots:
    void typesRoundAsGgmlCpu()
    {
        using R = qs::ActivationRounding;
        QCOMPARE(qs::llamaCppActivationRounding("Q4_0"), R::Q8_0);
        QCOMPARE(qs::llamaCppActivationRounding("Q5_1"), R::Q8_0);
        QCOMPARE(qs::llamaCppActivationRounding("IQ4_NL"), R::Q8_0);
        QCOMPARE(qs::llamaCppActivationRounding("Q4_K"), R::Q8_K);
        QCOMPARE(qs::llamaCppActivationRounding("IQ4_XS"), R::Q8_K);
        QCOMPARE(qs::llamaCppActivationRounding("F16"), R::F16);
        QCOMPARE(qs::llamaCppActivationRounding("BF16"), R::BF16);
        QCOMPARE(qs::llamaCppActivationRounding("F32"), R::None);
        QCOMPARE(qs::llamaCppActivationRounding("INT4-g128-asym"), R::None);
    }

    void q8_0Block()
    {
        // amax 127: d = 1 (exact in fp16), values round to integers, ties to even.
        std::vector<float> x(32, 0.0f);
        x[0] = 127.0f;
        x[1] = 2.5f;
        x[2] = 3.5f;
        x[3] = -0.4f;
        x[4] = -126.6f;
        qs::roundActivations(qs::ActivationRounding::Q8_0, x.data(), x.size());
        QCOMPARE(x[0], 127.0f);
        QCOMPARE(x[1], 2.0f);
        QCOMPARE(x[2], 4.0f);
        QCOMPARE(x[3], -0.0f);
        QCOMPARE(x[4], -127.0f);
        // amax 1: d = fp16(1/127) = 0.007873535 (not 1/127), q = round(x * 127).
        std::vector<float> y(32, 0.0f);
        y[0] = 1.0f;
        y[1] = 0.5f;
        qs::roundActivations(qs::ActivationRounding::Q8_0, y.data(), y.size());
        const float d = 0.007873535156250f; // 0x2008 as fp16
        QCOMPARE(y[0], d * 127.0f);
        QCOMPARE(y[1], d * 64.0f); // 63.5 rounds to even
    }

    void q8_KBlock()
    {
        // The largest |x| is negative: iscale = -127 / max = 50, d = 1 / 50; q = round(50 x), ties to even.
        std::vector<float> x(256, 0.0f);
        x[0] = -2.54f;
        x[1] = 0.01f;  // 0.5 -> 0
        x[2] = 0.03f;  // 1.5 -> 2
        x[3] = 2.0f;   // 100
        qs::roundActivations(qs::ActivationRounding::Q8_K, x.data(), x.size());
        const float iscale = -127.0f / -2.54f, d = 1.0f / iscale;
        QCOMPARE(x[0], d * std::nearbyint(iscale * -2.54f));
        QCOMPARE(x[1], 0.0f);
        QCOMPARE(x[2], d * 2.0f);
        QCOMPARE(x[3], d * 100.0f);
    }

    // The Q8_0 original against llama-perplexity's running perplexity: closer with llama.cpp's arithmetic.
    void perplexityAgainstLlamaPerplexity()
    {
        qs::EvalParams p;
        p.model = qs::openModel(kCode3m);
        p.textFile = kCodeText;
        p.ctx = 128;
        const qs::EvalResult plain = qs::evaluate(p);
        p.llamaCppActivations = true;
        const qs::EvalResult llama = qs::evaluate(p);
        QCOMPARE(llama.chunks, 20u);
        const double dPlain = meanRunningDifference(plain), dLlama = meanRunningDifference(llama);
        qInfo("mean |running ppl / llama-perplexity - 1|: plain %.3g, llama.cpp arithmetic %.3g; ppl %.6f",
              dPlain, dLlama, llama.perplexity);
        qInfo("mean |running ppl / llama-perplexity - 1|: plain %.3g, llama.cpp arithmetic %.3g; ppl %.6f",
              dPlain, dLlama, llama.perplexity);
        QVERIFY2(dLlama < 5e-4, qPrintable(QString::number(dLlama)));
        QVERIFY2(dLlama < dPlain, qPrintable(QStringLiteral("%1 vs %2").arg(dLlama).arg(dPlain)));
        QVERIFY2(std::fabs(llama.perplexity / kLlamaRunning[19] - 1.0) < 5e-4, qPrintable(QString::number(llama.perplexity)));
    }

    // llama.cpp's Q4_K_M mix of code-3m: mean KL divergence and quantized perplexity within a few per cent
    // of llama-perplexity --kl-divergence; the baseline is not reused across arithmetic modes.
    void klDivergenceAgainstLlamaPerplexity()
    {
        qs::EvalParams p;
        p.model = qs::openModel(kCode3m);
        p.plan = qs::makePreset("llama.cpp-Q4_K_M", qs::layoutFromModel(*p.model));
        p.textFile = kCodeText;
        p.ctx = 128;
        p.llamaCppActivations = true;
        const qs::EvalResult r = qs::evaluate(p);
        QVERIFY2(std::fabs(r.kldMean / kLlamaKldMean - 1.0) < 0.03, qPrintable(QString::number(r.kldMean)));
        QVERIFY2(std::fabs(r.perplexityQuantized / kLlamaPplQ - 1.0) < 0.002,
                 qPrintable(QString::number(r.perplexityQuantized)));
        p.llamaCppActivations = false;
        p.baseline = r.baseline;
        QVERIFY(!qs::evaluate(p).baselineReused);
    }
};

QTEST_GUILESS_MAIN(TestLlamaCppArithmetic)
#include "tst_llamacpp_arithmetic.moc"
