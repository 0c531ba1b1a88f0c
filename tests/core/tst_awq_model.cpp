// Whole-model AWQ and the quantize job's awq method on code-3m: the layer-wise pass scales and folds every
// group (o through v with the scales tied across the query heads of a kv head), never raises a group's output
// error above round-to-nearest, and the AWQ-quantized GGUF written through the ordinary GGUF writer opens and
// has a lower KL divergence from the original on held-out text (EvalJob with the written file) than the RTN
// GGUF of the same plan. Calibration uses the first half of the text, evaluation the second half.
#include "core/infer/awqmodel.h"
#include "core/infer/evaluate.h"
#include "core/infer/forward.h"
#include "core/model/model.h"
#include "core/model/overlay.h"
#include "core/quant/method.h"
#include "core/quant/quantize.h"
#include "core/util/error.h"
#include "core/util/fileio.h"

#include <QTemporaryDir>
#include <QTest>
#include <algorithm>
#include <filesystem>
#include <fstream>

namespace {

const std::string kCode3m = QS_TEST_DATA "/code-3m/quantscope-code-3m-Q8_0.gguf";
const std::string kCodeText = QS_TEST_DATA "/eval/python-textwrap.txt";

// The text split at the line break nearest its middle: (calibration, evaluation).
std::pair<std::string, std::string> halves()
{
    const std::string text = qs::readRegularFile(kCodeText, 1 << 20, "text");
    const size_t cut = text.find('\n', text.size() / 2) + 1;
    return {text.substr(0, cut), text.substr(cut)};
}

// Every linear layer of the blocks in `format`.
qs::Plan blockLinears(const std::shared_ptr<const qs::Model>& model, const std::string& format)
{
    qs::Transformer tr(model);
    qs::Plan plan;
    for (uint32_t l = 0; l < tr.config().layers; ++l) {
        const auto& L = tr.layerTensors(l);
        for (const auto& n : {L.q, L.k, L.v, L.o, L.gate, L.up, L.down})
            plan.assign(n, format);
    }
    return plan;
}

// The KL of a written quantized model against the original (EvalJob, ctx 128) on text or token ids.
qs::EvalResult klOf(const std::shared_ptr<const qs::Model>& original, const std::filesystem::path& written,
                    const std::string& text, const std::vector<int32_t>& tokens = {})
{
    qs::EvalParams e;
    e.model = original;
    e.quantizedModel = qs::openModel(written);
    e.text = text;
    e.tokens = tokens;
    e.ctx = 128;
    qs::EvalJob job(e);
    if (job.run() != qs::JobStatus::Succeeded)
        qWarning("%s", job.errorMessage().c_str());
    return job.result();
}

} // namespace

class TestAwqModel : public QObject {
    Q_OBJECT
private slots:
    void initTestCase() { QVERIFY(m_dir.isValid()); }

    void layerWisePassScalesEveryGroup()
    {
        std::shared_ptr<const qs::Model> model = qs::openModel(kCode3m);
        qs::AwqModelParams p;
        p.model = model;
        p.plan = blockLinears(model, "Q4_K");
        p.text = halves().first;
        p.ctx = 128;
        qs::AwqJob job(p);
        QCOMPARE(job.run(), qs::JobStatus::Succeeded);
        const qs::AwqModelResult& r = job.result();
        QVERIFY(r.chunks >= 2);
        QCOMPARE(r.groups.size(), size_t(4 * 4));
        int lower = 0;
        for (const auto& g : r.groups) {
            qInfo("layer %u %-8s alpha %.2f%s  RTN %.5g  AWQ %.5g  (%.1f%% lower) %s", g.layer,
                  g.group.c_str(), g.alpha, g.duo ? " duo" : "", g.errorRtn, g.errorAfter,
                  100.0 * (1 - g.errorAfter / g.errorRtn), g.note.c_str());
            QVERIFY2(g.scaled, g.note.c_str());
            QVERIFY(g.errorAfter <= g.errorRtn);
            lower += g.errorAfter < g.errorRtn;
            QCOMPARE(g.clippedTensors, 0); // Q4_K picks its own scales
            QVERIFY(g.note.find("own block scales") != std::string::npos);
        }
        QCOMPARE(lower, 16); // every group gains on the calibration data
        // The folds: norms, v and up of every layer, plus the scaled linears.
        qs::Transformer tr(model);
        for (uint32_t l = 0; l < 4; ++l) {
            const auto& L = tr.layerTensors(l);
            for (const auto& n : {L.attnNorm, L.ffnNorm, L.v, L.up})
                QVERIFY2(std::count(r.transformedTensors.begin(), r.transformedTensors.end(), n) == 1, n.c_str());
        }
        const auto& g0 = r.groups[0];
        QCOMPARE(g0.foldedInto, tr.layerTensors(0).attnNorm);
        QCOMPARE(r.groups[1].foldedInto, tr.layerTensors(0).v);
        QCOMPARE(r.groups[3].foldedInto, tr.layerTensors(0).up);

        // The transformed float model computes the original's function (before quantization).
        // Every scale is folded, so the transformed weights together are the same function.
        const auto overlay = r.transformed;
        qs::Transformer a(model), b(overlay);
        const std::vector<int32_t> ids = {0, 500, 17, 300, 42, 9, 777, 5};
        qs::HiddenStates ha = a.embed({ids}), hb = b.embed({ids});
        a.runLayers(ha, 0, 4);
        b.runLayers(hb, 0, 4);
        const Eigen::MatrixXf la = a.logits(ha), lb = b.logits(hb);
        const double diff = (la - lb).cwiseAbs().maxCoeff();
        qInfo("transformed float model: max |logit difference| %.3g", diff);
        // Clipping would change the function; Q4_K has none, so only float rounding remains.
        QVERIFY2(diff <= 1e-4 * la.cwiseAbs().maxCoeff(), qPrintable(QString::number(diff)));
    }

    // The overlay AWQ writes into, one tensor at a time: values round-trip in the stored type (F32 for a
    // quantized original, the model's own F32 here), the other tensors are the base's, misuse is refused, and
    // no temporary file is left behind (they are unlinked as soon as they are created).
    void overlayBuilderSpillsTensorByTensor()
    {
        namespace fs = std::filesystem;
        auto countTemp = [] {
            int n = 0;
            for (const auto& e : fs::directory_iterator(fs::temp_directory_path()))
                n += e.path().filename().string().starts_with("quantscope-weights-");
            return n;
        };
        const int before = countTemp();
        const auto model = qs::openModel(kCode3m);
        qs::Transformer tr(model);
        const std::string q = tr.layerTensors(0).q, norm = tr.layerTensors(1).ffnNorm;
        std::vector<float> wq = *tr.weights(q);
        for (size_t i = 0; i < wq.size(); ++i)
            wq[i] = float(i % 97) * 0.25f - 3.0f;
        std::vector<float> wn(model->find(norm)->elements(), 0.5f);
        std::shared_ptr<const qs::Model> overlay;
        {
            qs::OverlayBuilder b(*model);
            b.replace(q, wq);
            QCOMPARE(countTemp(), before); // written, yet nothing on disk by name
            b.replace(norm, wn);
            QVERIFY(b.contains(q) && b.contains(norm) && !b.contains(tr.layerTensors(0).k));
            QCOMPARE(b.count(), size_t(2));
            QVERIFY_THROWS_EXCEPTION(qs::Error, b.replace(q, wq));                    // twice
            QVERIFY_THROWS_EXCEPTION(qs::Error, b.replace("no.such.tensor", wq));     // unknown
            QVERIFY_THROWS_EXCEPTION(qs::Error, b.replace(norm, std::vector<float>(3))); // wrong count
            overlay = b.finish();
        }
        QCOMPARE(overlay->tensors().size(), model->tensors().size());
        QCOMPARE(overlay->find(q)->dtype, qs::DType::F32); // the original is Q8_0
        qs::Transformer o(overlay);
        QCOMPARE(*o.weights(q), wq);
        QCOMPARE(*o.weights(norm), wn);
        const std::string k = tr.layerTensors(0).k;
        QCOMPARE(*o.weights(k), *tr.weights(k));
        QCOMPARE(countTemp(), before);
    }

    void cancelEndsAsCancelled()
    {
        qs::AwqModelParams p;
        p.model = qs::openModel(kCode3m);
        p.plan = blockLinears(p.model, "Q4_0");
        p.text = halves().first;
        p.ctx = 128;
        qs::AwqJob job(p);
        job.cancel();
        QCOMPARE(job.run(), qs::JobStatus::Cancelled);
    }

    void methodNames()
    {
        QCOMPARE(qs::quantMethodFromName("AWQ"), std::optional(qs::QuantMethod::Awq));
        QCOMPARE(qs::quantMethodFromName("rtn"), std::optional(qs::QuantMethod::Rtn));
        QCOMPARE(qs::quantMethodFromName("gptq"), std::optional(qs::QuantMethod::Gptq));
        QVERIFY(!qs::quantMethodFromName("smoothquant"));
        QCOMPARE(std::string(qs::quantMethodName(qs::QuantMethod::Awq)), std::string("awq"));
    }

    void awqGgufHasLowerKlThanRtn_data()
    {
        QTest::addColumn<QString>("format");
        QTest::newRow("Q4_K") << "Q4_K";
        QTest::newRow("Q4_0") << "Q4_0";
    }
    void awqGgufHasLowerKlThanRtn()
    {
        QFETCH(QString, format);
        std::shared_ptr<const qs::Model> model = qs::openModel(kCode3m);
        const auto [calibration, evaluation] = halves();
        const std::string calFile = m_dir.filePath("calibration.py").toStdString();
        std::ofstream(calFile) << calibration;

        auto write = [&](qs::QuantMethod method, const std::string& name) {
            qs::QuantizeParams q;
            q.model = model;
            q.plan = blockLinears(model, format.toStdString());
            q.output = m_dir.filePath(QString::fromStdString(name)).toStdString();
            q.allowRequantize = true; // code-3m's Q8_0 weights are the original
            q.method = method;
            q.calibrationFile = calFile;
            q.calibrationChunks = 8;
            qs::QuantizeJob job(q);
            const auto status = job.run();
            if (status != qs::JobStatus::Succeeded)
                qWarning("%s", job.errorMessage().c_str());
            for (const auto& n : job.result().methodNotes)
                qInfo("%s", n.c_str());
            return std::pair(status, q.output);
        };
        const auto [rtnStatus, rtnPath] =
            write(qs::QuantMethod::Rtn, "rtn-" + format.toStdString() + ".gguf");
        const auto [awqStatus, awqPath] =
            write(qs::QuantMethod::Awq, "awq-" + format.toStdString() + ".gguf");
        QCOMPARE(rtnStatus, qs::JobStatus::Succeeded);
        QCOMPARE(awqStatus, qs::JobStatus::Succeeded);
        // Same plan, same size: AWQ only rescales.
        QCOMPARE(std::filesystem::file_size(awqPath), std::filesystem::file_size(rtnPath));

        const qs::EvalResult rtn = klOf(model, rtnPath, evaluation), awq = klOf(model, awqPath, evaluation);
        QVERIFY(rtn.quantized && awq.quantized);
        QCOMPARE(rtn.positions, awq.positions);
        qInfo("code-3m %s on held-out text (%zu positions): KL mean RTN %.5f, AWQ %.5f (%.1f%% lower); "
              "PPL original %.4f, RTN %.4f, AWQ %.4f; same top token RTN %.3f, AWQ %.3f",
              qPrintable(format), rtn.positions, rtn.kldMean, awq.kldMean,
              100.0 * (1 - awq.kldMean / rtn.kldMean), rtn.perplexity, rtn.perplexityQuantized,
              awq.perplexityQuantized, rtn.sameTop, awq.sameTop);
        QVERIFY(rtn.kldMean > 1e-4);
        QVERIFY2(awq.kldMean < rtn.kldMean,
                 qPrintable(QString("AWQ %1 vs RTN %2").arg(awq.kldMean).arg(rtn.kldMean)));
    }

    // The checkpoint targets from Hugging Face safetensors (stories260K's HF copies, one of them in two BF16
    // shards): the same files and bytes as round-to-nearest, tensors in their input shards, lower KL.
    void awqCheckpointTargets_data()
    {
        QTest::addColumn<QString>("model");
        QTest::addColumn<int>("target");
        QTest::newRow("hf-bf16-sharded fake-quant")
            << "hf-bf16-sharded" << int(qs::QuantizeTarget::FakeQuant);
        QTest::newRow("hf-f32 compressed-tensors") << "hf-f32" << int(qs::QuantizeTarget::CompressedTensors);
    }
    void awqCheckpointTargets()
    {
        QFETCH(QString, model);
        QFETCH(int, target);
        std::shared_ptr<const qs::Model> original =
            qs::openModel(QS_SAMPLE_DIR "/stories260K/" + model.toStdString());
        const std::string text = qs::readRegularFile(QS_SAMPLE_DIR "/eval/stories.txt", 1 << 20, "text");
        const size_t cut = text.find('\n', text.size() / 2) + 1;
        // The HF copies carry no vocabulary: the GGUF's tokenizer (the same model) gives the token ids.
        const auto gguf = qs::openModel(QS_SAMPLE_DIR "/stories260K/stories260K.gguf");
        const auto calibration = qs::evaluationTokens(*gguf, text.substr(0, cut));
        const auto evaluation = qs::evaluationTokens(*gguf, text.substr(cut));
        auto write = [&](qs::QuantMethod method) {
            qs::QuantizeParams q;
            q.model = original;
            q.plan = blockLinears(original, "INT4-ch-asym");
            q.target = qs::QuantizeTarget(target);
            q.output =
                m_dir.filePath(model + "-" + QString::number(target) + "-" + qs::quantMethodName(method))
                    .toStdString();
            q.method = method;
            q.calibrationTokens = calibration;
            q.calibrationCtx = 128;
            qs::QuantizeJob job(q);
            if (job.run() != qs::JobStatus::Succeeded)
                qWarning("%s", job.errorMessage().c_str());
            return job.takeResult();
        };
        const qs::QuantizeResult rtn = write(qs::QuantMethod::Rtn), awq = write(qs::QuantMethod::Awq);
        QVERIFY(!rtn.files.empty());
        QCOMPARE(awq.files.size(), rtn.files.size());
        for (size_t i = 0; i < rtn.files.size(); ++i) {
            QCOMPARE(awq.files[i].filename(), rtn.files[i].filename());
            QCOMPARE(std::filesystem::file_size(awq.files[i]), std::filesystem::file_size(rtn.files[i]));
        }
        QCOMPARE(awq.weightBytesWritten, awq.predictedWeightBytes);
        QCOMPARE(awq.awqGroups.size(), size_t(5 * 4));
        const auto folder = [](const qs::QuantizeResult& r) { return r.files.front().parent_path(); };
        const qs::EvalResult a = klOf(original, folder(awq), {}, evaluation);
        const qs::EvalResult b = klOf(original, folder(rtn), {}, evaluation);
        qInfo("stories260K %s, INT4-ch-asym, %s: KL mean RTN %.5f, AWQ %.5f (%.1f%% lower), %zu positions",
              qPrintable(model), qs::quantizeTargetName(qs::QuantizeTarget(target)), b.kldMean, a.kldMean,
              100.0 * (1 - a.kldMean / b.kldMean), a.positions);
        QVERIFY(b.kldMean > 1e-4);
        QVERIFY2(a.kldMean < b.kldMean,
                 qPrintable(QString("AWQ %1 vs RTN %2").arg(a.kldMean).arg(b.kldMean)));
    }

    void awqNeedsCalibrationAndGgufRefusesGptq()
    {
        qs::QuantizeParams q;
        q.model = qs::openModel(kCode3m);
        q.plan = blockLinears(q.model, "Q4_0");
        q.output = m_dir.filePath("x.gguf").toStdString();
        q.allowRequantize = true;
        q.method = qs::QuantMethod::Awq;
        auto text = [](const std::vector<qs::QuantizeProblem>& ps) {
            std::string s;
            for (const auto& p : ps)
                s += p.toString() + "\n";
            return s;
        };
        QVERIFY(text(qs::validateQuantize(q)).find("calibration") != std::string::npos);
        q.calibrationFile = kCodeText;
        QVERIFY(qs::validateQuantize(q).empty());
        q.method = qs::QuantMethod::Gptq;
        // GPTQ rounds into Q4_0's ggml blocks (tst_gptq_ggml): a GGUF output is fine.
        QVERIFY(qs::validateQuantize(q).empty());
        q.method = qs::QuantMethod::Rtn;
        QVERIFY(qs::validateQuantize(q).empty());
    }

private:
    QTemporaryDir m_dir;
};

QTEST_GUILESS_MAIN(TestAwqModel)
#include "tst_awq_model.moc"
