// Activation statistics against independent computations: blk.0's attention input of the sample computed by
// hand (embedding row, RMSNorm, attn_norm) gives mean x², mean |x|, max |x| and XᵀX/n; the layer-by-layer
// path (with Hessians) and the chunk-by-chunk path give the same importance; XᵀX's diagonal is the mean
// square; the HDF5 file reads back exactly (and as an importance matrix); hostile or foreign files are
// refused with the dataset named.
#include "core/infer/activationstats.h"
#include "core/infer/evaluate.h"
#include "core/infer/forward.h"
#include "core/model/model.h"
#include "core/infer/gptqmodel.h"
#include "core/quant/imatrix.h"
#include "core/quant/quantize.h"
#include "core/util/error.h"
#include "core/util/fileio.h"
#include "core/stories_reference.h"

#include <QTemporaryDir>
#include <QTest>
#include <algorithm>
#include <cmath>

namespace {

const std::string kStories = QS_SAMPLE_DIR "/stories260K/stories260K.gguf";
const std::string kStoriesText = QS_SAMPLE_DIR "/eval/stories.txt";
const std::string kCode3m = QS_TEST_DATA "/code-3m/quantscope-code-3m-Q8_0.gguf";
const std::string kCodeText = QS_TEST_DATA "/eval/python-textwrap.txt";

bool close(double a, double b, double rel)
{
    return std::fabs(a - b) <= rel * std::max({std::fabs(a), std::fabs(b), 1e-12});
}

qs::CalibrateParams params(const std::string& model, const std::string& text, uint32_t ctx, uint32_t chunks)
{
    qs::CalibrateParams p;
    p.model = qs::openModel(model);
    p.text = qs::readRegularFile(text, 1 << 20, "text");
    p.ctx = ctx;
    p.maxChunks = chunks;
    return p;
}

} // namespace

class TestActivationStats : public QObject {
    Q_OBJECT

private slots:
    // The statistics of blk.0's attention input, computed by hand from the embedding.
    void attentionInputMatchesHandComputation()
    {
        qs::CalibrateParams p = params(kStories, kStoriesText, 64, 2);
        p.hessians = true;
        const qs::CalibrateResult r = qs::calibrate(p);
        const qs::Model& model = *p.model;
        QCOMPARE(r.activations.inputs.size(), size_t(5 * 4)); // per block: q/k/v, o, gate/up, down
        const qs::InputActivations* in = r.activations.find("blk.0.attn_k.weight");
        QVERIFY(in);
        QCOMPARE(in->tensors, (std::vector<std::string>{"blk.0.attn_q.weight", "blk.0.attn_k.weight",
                                                         "blk.0.attn_v.weight"}));
        QCOMPARE(r.activations.find("blk.3.ffn_up.weight")->tensors,
                 (std::vector<std::string>{"blk.3.ffn_gate.weight", "blk.3.ffn_up.weight"}));
        QCOMPARE(in->count, 128.0);
        QCOMPARE(in->columns(), size_t(64));
        QCOMPARE(in->xtx.size(), size_t(64 * 64));

        std::vector<double> sq(64, 0.0), ab(64, 0.0), mx(64, 0.0), xtx(64 * 64, 0.0);
        for (const std::vector<double>& y : qstest::storiesAttentionInputs(model, p.text, 64, 2)) {
            for (size_t k = 0; k < 64; ++k) {
                sq[k] += y[k] * y[k];
                ab[k] += std::fabs(y[k]);
                mx[k] = std::max(mx[k], std::fabs(y[k]));
            }
            for (size_t a = 0; a < 64; ++a)
                for (size_t b = 0; b < 64; ++b)
                    xtx[a * 64 + b] += y[a] * y[b];
        }
        for (size_t k = 0; k < 64; ++k) {
            QVERIFY2(close(in->meanSq[k], sq[k] / 128, 1e-4), qPrintable(QString::number(k)));
            QVERIFY2(close(in->meanAbs[k], ab[k] / 128, 1e-4), qPrintable(QString::number(k)));
            QVERIFY2(close(in->maxAbs[k], mx[k], 1e-4), qPrintable(QString::number(k)));
        }
        double worst = 0, scale = 0;
        for (size_t i = 0; i < xtx.size(); ++i) {
            worst = std::max(worst, std::fabs(in->xtx[i] - xtx[i] / 128));
            scale = std::max(scale, std::fabs(xtx[i] / 128));
        }
        QVERIFY2(worst <= 1e-4 * scale, qPrintable(QString::number(worst / scale)));
        // Symmetric, and the diagonal is the mean square.
        for (size_t a = 0; a < 64; ++a) {
            QVERIFY(close(in->xtx[a * 64 + a], in->meanSq[a], 1e-4));
            for (size_t b = 0; b < a; ++b)
                QCOMPARE(in->xtx[a * 64 + b], in->xtx[b * 64 + a]);
        }
    }

    // The layer-by-layer path (Hessians) and the chunk-by-chunk path agree on every vector; every input's
    // XᵀX diagonal equals its mean square; the importance entries are the mean squares.
    void bothPathsAgree()
    {
        qs::CalibrateParams p = params(kCode3m, kCodeText, 128, 3);
        const qs::CalibrateResult chunked = qs::calibrate(p);
        p.hessians = true;
        const qs::CalibrateResult layered = qs::calibrate(p);
        QCOMPARE(chunked.activations.inputs.size(), size_t(16));
        QCOMPARE(layered.activations.inputs.size(), size_t(16));
        QCOMPARE(chunked.entries.size(), size_t(28));
        QVERIFY(!chunked.activations.hasHessians());
        QVERIFY(layered.activations.hasHessians());
        for (const qs::InputActivations& a : chunked.activations.inputs) {
            const qs::InputActivations* b = layered.activations.find(a.tensors.front());
            QVERIFY(b);
            QCOMPARE(b->tensors, a.tensors);
            QCOMPARE(b->count, 384.0);
            for (size_t k = 0; k < a.columns(); ++k) {
                QVERIFY(close(a.meanSq[k], b->meanSq[k], 1e-4));
                QVERIFY(close(a.meanAbs[k], b->meanAbs[k], 1e-4));
                QVERIFY(close(a.maxAbs[k], b->maxAbs[k], 1e-4));
                QVERIFY2(close(b->xtx[k * a.columns() + k], b->meanSq[k], 1e-3),
                         qPrintable(QString::fromStdString(a.tensors.front())));
            }
        }
        for (const qs::ImportanceEntry& e : chunked.entries)
            QCOMPARE(e.values, chunked.activations.find(e.name)->meanSq);
    }

    // Written by the job as it goes (statsOut), read back exactly; the same file is an importance matrix.
    void fileRoundTrip()
    {
        QTemporaryDir dir;
        const std::string path = dir.filePath(QStringLiteral("a.h5")).toStdString();
        qs::CalibrateParams p = params(kCode3m, kCodeText, 128, 2);
        p.hessians = true;
        p.statsOut = path;
        p.dataset = "textwrap";
        const qs::CalibrateResult r = qs::calibrate(p);
        QVERIFY(!r.activations.hasHessians()); // written layer by layer, then freed
        const qs::ActivationStats back = qs::loadActivationStats(path);
        QCOMPARE(back.ctx, 128u);
        QCOMPARE(back.chunks, 2u);
        QCOMPARE(back.tokens, uint64_t(256));
        QCOMPARE(back.inputs.size(), r.activations.inputs.size());
        QVERIFY(back.hasHessians());
        for (const qs::InputActivations& a : r.activations.inputs) {
            const qs::InputActivations* b = back.find(a.tensors.front());
            QVERIFY(b);
            QCOMPARE(b->tensors, a.tensors);
            QCOMPARE(b->count, a.count);
            QCOMPARE(b->meanSq, a.meanSq);
            QCOMPARE(b->meanAbs, a.meanAbs);
            QCOMPARE(b->maxAbs, a.maxAbs);
            QCOMPARE(b->xtx.size(), a.columns() * a.columns());
        }
        // The Hessians on disk are those of an in-memory run.
        p.statsOut.clear();
        const qs::CalibrateResult mem = qs::calibrate(p);
        for (const qs::InputActivations& a : mem.activations.inputs)
            QCOMPARE(back.find(a.tensors.front())->xtx, a.xtx);
        // Without Hessians the vectors only.
        QVERIFY(!qs::loadActivationStats(path, /*withHessians=*/false).hasHessians());

        const qs::ImportanceMatrix m = qs::ImportanceMatrix::load(path);
        QCOMPARE(m.format(), qs::ImportanceFileFormat::ActivationStats);
        QCOMPARE(m.entries().size(), size_t(28));
        QCOMPARE(m.chunkCount(), uint64_t(2));
        const auto v = m.importanceFor("blk.1.ffn_down.weight", 768);
        QCOMPARE(std::vector<float>(v.begin(), v.end()), r.activations.find("blk.1.ffn_down.weight")->meanSq);
    }

    // GPTQ from the stored Hessians: for blk.0's q/k/v (whose inputs the sequential pass sees unchanged) the
    // same result as the sequential pass; for the whole model a lower KL divergence than round-to-nearest on
    // held-out text.
    void gptqFromStoredHessians()
    {
        // 12 chunks of 128 tokens to calibrate (more tokens than the widest input has columns), the rest of the
        // text held out.
        constexpr size_t kChunks = 12;
        qs::CalibrateParams c = params(kCode3m, kCodeText, 128, kChunks);
        const std::vector<int32_t> all = qs::evaluationTokens(*c.model, c.text);
        c.text.clear();
        c.tokens.assign(all.begin(), all.begin() + kChunks * 128);
        for (size_t i = 1; i < kChunks; ++i)
            c.tokens[i * 128] = all.front(); // BOS in front of every chunk, as calibrate() puts it
        c.hessians = true;
        auto stats = std::make_shared<qs::ActivationStats>(qs::calibrate(c).activations);

        qs::Plan plan;
        for (const auto& t : c.model->tensors())
            if (t.shape.size() == 2 && t.name.starts_with("blk."))
                plan.assign(t.name, "Q4_0");
        qs::GptqModelParams g;
        g.model = c.model;
        g.plan = plan;
        g.tokens = c.tokens;
        g.ctx = 128;
        const qs::GptqModelResult sequential = qs::gptqQuantizeModel(g);
        g.hessians = stats;
        g.tokens.clear();
        const qs::GptqModelResult stored = qs::gptqQuantizeModel(g);
        QCOMPARE(stored.tensors.size(), sequential.tensors.size());
        QCOMPARE(stored.tokens, kChunks * 128);
        for (size_t i = 0; i < 3; ++i) {
            const auto& a = sequential.tensors[i];
            const auto& b = stored.tensors[i];
            QCOMPARE(a.tensor, b.tensor);
            QVERIFY2(close(a.result.proxyError, b.result.proxyError, 1e-3),
                     qPrintable(QStringLiteral("%1: %2 vs %3").arg(QString::fromStdString(a.tensor)).arg(a.result.proxyError).arg(b.result.proxyError)));
        }
        // A tensor without XᵀX in the file is refused, naming it.
        auto partial = std::make_shared<qs::ActivationStats>(*stats);
        partial->inputs.front().xtx.clear();
        g.hessians = partial;
        try {
            qs::gptqQuantizeModel(g);
            QFAIL("a tensor without a stored Hessian was accepted");
        } catch (const qs::Error& e) {
            QVERIFY2(std::string(e.what()).find("--hessians") != std::string::npos, e.what());
        }

        // Through the quantize job to GGUF, held-out text: lower KL divergence than round to nearest.
        QTemporaryDir dir;
        const std::string h5 = dir.filePath(QStringLiteral("h.h5")).toStdString();
        qs::writeActivationStats(*stats, h5);
        auto quantizeTo = [&](const std::string& name, qs::QuantMethod method) {
            qs::QuantizeParams q;
            q.model = c.model;
            q.plan = plan;
            q.target = qs::QuantizeTarget::Gguf;
            q.output = dir.filePath(QString::fromStdString(name)).toStdString();
            q.allowRequantize = true;
            q.method = method;
            if (method == qs::QuantMethod::Gptq)
                q.gptqHessiansFile = h5;
            qs::QuantizeJob job(q);
            if (job.run() != qs::JobStatus::Succeeded)
                qFatal("quantize failed: %s", job.errorMessage().c_str());
            return qs::openModel(q.output);
        };
        qs::EvalParams e;
        e.model = c.model;
        e.tokens.assign(all.begin() + kChunks * 128, all.end());
        e.ctx = 128;
        e.quantizedModel = quantizeTo("rtn.gguf", qs::QuantMethod::Rtn);
        const double rtn = qs::evaluate(e).kldMean;
        e.quantizedModel = quantizeTo("gptq.gguf", qs::QuantMethod::Gptq);
        const double gptq = qs::evaluate(e).kldMean;
        QVERIFY2(gptq < rtn, qPrintable(QStringLiteral("GPTQ %1, RTN %2").arg(gptq).arg(rtn)));
    }

    // Foreign and hostile files: refused with the dataset named, never a crash.
    void hostileFiles()
    {
        QTemporaryDir dir;
        auto expectError = [](const std::string& path, const std::string& needle) {
            try {
                qs::loadActivationStats(path);
                QFAIL(qPrintable(QString::fromStdString(path + " was accepted")));
            } catch (const qs::Error& e) {
                QVERIFY2(std::string(e.what()).find(needle) != std::string::npos, e.what());
            }
        };
        expectError(QS_TEST_DATA "/hdf5/plain.h5", "quantscope_activation_stats");
        expectError(QS_TEST_DATA "/hdf5/truncated.h5", "truncated.h5");

        qs::InputActivations in;
        in.tensors = {"a.weight", "b.weight"};
        in.count = 10;
        in.meanSq = {1.0f, 2.0f};
        in.meanAbs = {0.5f, -1.0f}; // negative: impossible
        in.maxAbs = {2.0f, 3.0f};
        qs::ActivationStats stats;
        stats.inputs = {in};
        const std::string negative = dir.filePath(QStringLiteral("neg.h5")).toStdString();
        qs::writeActivationStats(stats, negative);
        expectError(negative, "inputs/a.weight+b.weight/mean_abs");

        stats.inputs[0].meanAbs = {0.5f, 1.0f};
        stats.inputs[0].count = 0;
        const std::string zero = dir.filePath(QStringLiteral("zero.h5")).toStdString();
        qs::writeActivationStats(stats, zero);
        expectError(zero, "no tokens");

        // A tensor in two inputs.
        stats.inputs[0].count = 10;
        qs::InputActivations twice = stats.inputs[0];
        twice.tensors = {"b.weight"};
        stats.inputs.push_back(twice);
        const std::string dup = dir.filePath(QStringLiteral("dup.h5")).toStdString();
        qs::writeActivationStats(stats, dup);
        expectError(dup, "belongs to two inputs");

        // A name that cannot be a group is refused when writing, and nothing is left behind.
        stats.inputs = {in};
        stats.inputs[0].tensors = {"a/b"};
        const std::string slash = dir.filePath(QStringLiteral("slash.h5")).toStdString();
        QVERIFY_THROWS_EXCEPTION(qs::Error, qs::writeActivationStats(stats, slash));
        QVERIFY(!std::filesystem::exists(slash));
        QCOMPARE(QDir(dir.path()).entryList(QDir::Files).size(), 3);
    }
};

QTEST_GUILESS_MAIN(TestActivationStats)
#include "tst_activationstats.moc"
