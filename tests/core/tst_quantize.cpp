// The quantize job: GGUF output byte-identical to llama.cpp's llama-quantize (tests/data/reference/
// llama-quantize), round trip through our loader, split output, and the failure cases (each leaves no
// file behind).
#include "core/gguf_builder.h"
#include "core/model/model.h"
#include "core/plan/modellayout.h"
#include "core/plan/plan.h"
#include "core/quant/ggml.h"
#include "core/quant/metrics.h"
#include "core/quant/quantize.h"
#include "core/util/atomicfile.h"

#include <QTemporaryDir>
#include <QTest>
#include <cstring>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;

namespace {

const fs::path kRef = fs::path(QS_TEST_DATA) / "reference" / "llama-quantize";

std::string readAll(const fs::path& p)
{
    std::ifstream f(p, std::ios::binary);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

// The plan that gives every tensor the type llama-quantize chose in `reference`.
qs::Plan planFromReference(const qs::Model& input, const qs::Model& reference)
{
    qs::Plan plan;
    for (const auto& t : reference.tensors()) {
        const qs::TensorInfo* in = input.find(t.name);
        if (in && in->dtype != t.dtype)
            plan.assign(t.name, qs::dtypeName(t.dtype));
    }
    plan.setPreset("llama.cpp-Q4_K_M"); // all three references were made with the Q4_K_M ftype
    return plan;
}

std::vector<std::string> filesIn(const fs::path& dir)
{
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir))
        names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
}

} // namespace

class TestQuantize : public QObject {
    Q_OBJECT

private:
    std::shared_ptr<const qs::Model> m_input;
    QTemporaryDir m_dir;

    fs::path tmp(const std::string& name) const { return fs::path(m_dir.path().toStdString()) / name; }

    qs::QuantizeParams paramsFor(const std::string& reference, bool imatrix, const std::string& out)
    {
        auto ref = qs::openModel(kRef / reference);
        qs::QuantizeParams p;
        p.model = m_input;
        p.plan = planFromReference(*m_input, *ref);
        p.output = tmp(out);
        if (imatrix)
            p.importanceFile = kRef / "tiny.imatrix.gguf";
        return p;
    }

private slots:
    void initTestCase()
    {
        QVERIFY(m_dir.isValid());
        m_input = qs::openModel(kRef / "tiny-F16.gguf");
    }

    void byteIdentity_data()
    {
        QTest::addColumn<QString>("reference");
        QTest::addColumn<bool>("imatrix");
        QTest::newRow("mix") << "tiny-mix.gguf" << false;
        QTest::newRow("mix-imatrix") << "tiny-mix-imatrix.gguf" << true;
        QTest::newRow("Q4_K_M-imatrix") << "tiny-Q4_K_M-imatrix.gguf" << true;
    }

    void byteIdentity()
    {
        QFETCH(QString, reference);
        QFETCH(bool, imatrix);
        const std::string ref = reference.toStdString();
        qs::QuantizeJob job(paramsFor(ref, imatrix, "out-" + ref));
        QCOMPARE(job.run(), qs::JobStatus::Succeeded);
        const auto& r = job.result();
        QCOMPARE(r.files.size(), size_t{1});
        QCOMPARE(r.weightBytesWritten, r.predictedWeightBytes);

        // Tensor data first, so that a difference names the tensor.
        auto expected = qs::openModel(kRef / ref);
        auto got = qs::openModel(r.files[0]);
        QCOMPARE(got->tensors().size(), expected->tensors().size());
        for (size_t i = 0; i < got->tensors().size(); ++i) {
            const auto& g = got->tensors()[i];
            const auto& e = expected->tensors()[i];
            QCOMPARE(g.name, e.name);
            QCOMPARE(g.dtype, e.dtype);
            const auto gb = got->rawData(g), eb = expected->rawData(e);
            QVERIFY2(gb.size() == eb.size() && std::memcmp(gb.data(), eb.data(), gb.size()) == 0,
                     ("tensor data differs: " + g.name).c_str());
        }
        // Then the whole file, metadata and padding included.
        const std::string a = readAll(r.files[0]), b = readAll(kRef / ref);
        QCOMPARE(a.size(), b.size());
        QVERIFY(a == b);
        QCOMPARE(r.bytesWritten, uint64_t(a.size()));
    }

    // Our Q4_K_M preset, and mix.txt applied as rules on top of it, choose what llama-quantize chose.
    void presetsMatchLlamaQuantize()
    {
        const qs::ModelLayout layout = qs::layoutFromModel(*m_input);
        {
            const qs::Plan plan = qs::makePreset("llama.cpp-Q4_K_M", layout);
            auto ref = qs::openModel(kRef / "tiny-Q4_K_M-imatrix.gguf");
            for (const auto& t : ref->tensors())
                if (t.dtype != m_input->find(t.name)->dtype)
                    QCOMPARE(plan.formatOf(t.name).value_or("-"), std::string(qs::dtypeName(t.dtype)));
        }
        {
            qs::Plan plan = qs::makePreset("llama.cpp-Q4_K_M", layout);
            auto rules = qs::parseRules(readAll(kRef / "mix.txt"), "mix.txt");
            rules.push_back({qs::PlanRule::Match::Regex, "^token_embd\\.weight$", "Q8_0"});
            rules.push_back({qs::PlanRule::Match::Regex, "^output\\.weight$", "Q6_K"});
            qs::applyRules(plan, layout, rules);
            auto ref = qs::openModel(kRef / "tiny-mix.gguf");
            for (const auto& t : ref->tensors())
                if (t.dtype != m_input->find(t.name)->dtype)
                    QCOMPARE(plan.formatOf(t.name).value_or("-"), std::string(qs::dtypeName(t.dtype)));
        }
    }

    // Reopened with our loader, every quantized tensor decodes to our own dequantization of the
    // quantizer's bytes; untouched tensors and metadata are the input's.
    void roundTrip()
    {
        auto p = paramsFor("tiny-mix-imatrix.gguf", false, "roundtrip.gguf");
        p.threads = 2;
        qs::QuantizeJob job(p);
        QCOMPARE(job.run(), qs::JobStatus::Succeeded);
        auto out = qs::openModel(job.result().files[0]);
        QCOMPARE(out->tensors().size(), m_input->tensors().size());
        for (const auto& t : m_input->tensors()) {
            const qs::TensorInfo* o = out->find(t.name);
            QVERIFY(o);
            QCOMPARE(o->shape, t.shape);
            const auto bytes = out->rawData(*o);
            if (!p.plan.formatOf(t.name)) {
                const auto in = m_input->rawData(t);
                QCOMPARE(o->dtype, t.dtype);
                QVERIFY(bytes.size() == in.size() && std::memcmp(bytes.data(), in.data(), in.size()) == 0);
                continue;
            }
            std::vector<float> src(t.elements());
            m_input->decode(t, 0, t.elements(), src.data());
            std::vector<uint8_t> q(*qs::dtypeByteSize(o->dtype, t.elements()));
            qs::ggml::quantize(o->dtype, src.data(), t.rows(), t.columns(), q.data());
            QVERIFY2(q.size() == bytes.size() && std::memcmp(q.data(), bytes.data(), q.size()) == 0,
                     t.name.c_str());
            std::vector<float> mine(t.elements()), loaded(t.elements());
            qs::ggml::decode(o->dtype, q.data(), t.elements(), mine.data());
            out->decode(*o, 0, t.elements(), loaded.data());
            QVERIFY(std::memcmp(mine.data(), loaded.data(), mine.size() * sizeof(float)) == 0);
        }
        for (const auto& [key, value] : m_input->metadata()) {
            if (key == "general.file_type")
                continue;
            QVERIFY2(out->metadata().count(key), key.c_str());
            QCOMPARE(out->metadata().at(key).toString(1000), value.toString(1000));
        }
        QCOMPARE(out->metadata().at("general.file_type").toString(), std::string("15"));
        QCOMPARE(out->metadata().at("general.quantization_version").toString(), std::string("2"));
    }

    void split()
    {
        auto p = paramsFor("tiny-mix.gguf", false, "split.gguf");
        p.splitMaxBytes = 400000;
        qs::QuantizeJob job(p);
        QCOMPARE(job.run(), qs::JobStatus::Succeeded);
        const auto& r = job.result();
        QVERIFY(r.files.size() >= 3);
        QCOMPARE(r.files[0].filename().string(),
                 "split-00001-of-0000" + std::to_string(r.files.size()) + ".gguf");
        QVERIFY(!fs::exists(p.output));
        auto whole = qs::openModel(kRef / "tiny-mix.gguf");
        size_t tensors = 0;
        for (size_t i = 0; i < r.files.size(); ++i) {
            auto shard = qs::openModel(r.files[i]);
            QCOMPARE(shard->metadata().at("split.no").toString(), std::to_string(i));
            QCOMPARE(shard->metadata().at("split.count").toString(), std::to_string(r.files.size()));
            QCOMPARE(shard->metadata().at("split.tensors.count").toString(),
                     std::to_string(whole->tensors().size()));
            uint64_t data = 0;
            for (const auto& t : shard->tensors()) {
                const auto* w = whole->find(t.name);
                QVERIFY(w);
                const auto a = shard->rawData(t), b = whole->rawData(*w);
                QVERIFY(a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size()) == 0);
                data += t.bytes;
                ++tensors;
            }
            QVERIFY(data <= p.splitMaxBytes || shard->tensors().size() == 1);
        }
        QCOMPARE(tensors, whole->tensors().size());
        QCOMPARE(r.weightBytesWritten, r.predictedWeightBytes);
    }

    void unknownTensor()
    {
        auto p = paramsFor("tiny-mix.gguf", false, "unknown.gguf");
        p.plan.assign("blk.7.attn_q.weight", "Q4_K");
        const auto problems = qs::validateQuantize(p);
        QCOMPARE(problems.size(), size_t{1});
        QCOMPARE(problems[0].tensor, std::string("blk.7.attn_q.weight"));
        qs::QuantizeJob job(p);
        QCOMPARE(job.run(), qs::JobStatus::Failed);
        QVERIFY2(
            job.errorMessage().find("tensor 'blk.7.attn_q.weight': is in the plan but not in the model") !=
                std::string::npos,
            job.errorMessage().c_str());
        QVERIFY(!fs::exists(p.output));
    }

    void impossibleFormat()
    {
        qstest::GgufBuilder b;
        b.kv("general.architecture", qstest::GgufBuilder::vStr("llama"));
        std::string data;
        for (int i = 0; i < 96 * 4; ++i)
            data += qstest::GgufBuilder::le<float>(float(i % 7) - 3.0f);
        b.tensors.push_back({"blk.0.ffn_down.weight", {96, 4}, 0, data, std::nullopt, std::nullopt});
        const fs::path in = tmp("odd.gguf");
        qs::writeFileAtomically(in, b.build());
        qs::QuantizeParams p;
        p.model = qs::openModel(in);
        p.plan.assign("blk.0.ffn_down.weight", "Q4_K");
        p.output = tmp("odd-q4k.gguf");
        qs::QuantizeJob job(p);
        QCOMPARE(job.run(), qs::JobStatus::Failed);
        QVERIFY2(
            job.errorMessage().find("tensor 'blk.0.ffn_down.weight': Q4_K cannot store a row of 96 values") !=
                std::string::npos,
            job.errorMessage().c_str());
        QVERIFY(!fs::exists(p.output));
        // Q4_0's block of 32 does divide it.
        p.plan.assign("blk.0.ffn_down.weight", "Q4_0");
        qs::QuantizeJob ok(p);
        QCOMPARE(ok.run(), qs::JobStatus::Succeeded);
    }

    void requantizeNeedsPermission()
    {
        auto q = qs::openModel(kRef / "tiny-mix.gguf");
        qs::QuantizeParams p;
        p.model = q;
        p.plan.assign("blk.0.ffn_up.weight", "Q8_0"); // stored as Q4_0
        p.output = tmp("requant.gguf");
        qs::QuantizeJob refused(p);
        QCOMPARE(refused.run(), qs::JobStatus::Failed);
        QVERIFY(refused.errorMessage().find("already quantized") != std::string::npos);
        p.allowRequantize = true;
        qs::QuantizeJob job(p);
        QCOMPARE(job.run(), qs::JobStatus::Succeeded);
        QCOMPARE(job.result().warnings.size(), size_t{1});
    }

    void diskFull()
    {
        const auto before = filesIn(tmp(""));
        auto p = paramsFor("tiny-mix.gguf", false, "full.gguf");
        qs::AtomicFile::setFailAfterBytesForTesting(500000);
        qs::QuantizeJob job(p);
        const auto status = job.run();
        qs::AtomicFile::setFailAfterBytesForTesting(0);
        QCOMPARE(status, qs::JobStatus::Failed);
        QCOMPARE(job.errorCode(), qs::ErrorCode::Io);
        QVERIFY2(job.errorMessage().find("No space left on device") != std::string::npos,
                 job.errorMessage().c_str());
        QCOMPARE(filesIn(tmp("")), before);
    }

    void cancelMidRun()
    {
        auto p = paramsFor("tiny-mix.gguf", false, "cancelled.gguf");
        qs::writeFileAtomically(p.output, "an existing file");
        const auto before = filesIn(tmp(""));
        qs::QuantizeJob job(p);
        uint64_t seenTotal = 0;
        // The job's own control cannot take a handler after construction: cancel from a watcher thread
        // as soon as the job reports its first bytes.
        std::atomic<bool> stop{false};
        std::thread watcher([&] {
            while (!stop.load()) {
                const auto pr = job.control().progress();
                if (pr.bytesDone > 0) {
                    seenTotal = pr.bytesTotal;
                    job.cancel();
                    return;
                }
                std::this_thread::yield();
            }
        });
        const auto status = job.run();
        stop = true;
        watcher.join();
        QCOMPARE(status, qs::JobStatus::Cancelled);
        QCOMPARE(readAll(p.output), std::string("an existing file"));
        QCOMPARE(filesIn(tmp("")), before);
        Q_UNUSED(seenTotal);
    }

    void outputIsInput()
    {
        const fs::path copy = tmp("self.gguf");
        fs::copy_file(kRef / "tiny-F16.gguf", copy, fs::copy_options::overwrite_existing);
        const std::string original = readAll(copy);
        qs::QuantizeParams p;
        p.model = qs::openModel(copy);
        p.plan.assign("blk.0.attn_q.weight", "Q4_K");
        p.output = tmp("./self.gguf");
        qs::QuantizeJob job(p);
        QCOMPARE(job.run(), qs::JobStatus::Failed);
        QVERIFY2(job.errorMessage().find("is the input file") != std::string::npos,
                 job.errorMessage().c_str());
        QVERIFY(readAll(copy) == original);
        // A shard of a split output that would land on the input is caught too.
        p.output = tmp("self");
        fs::copy_file(copy, tmp("self-00001-of-00001.gguf"), fs::copy_options::overwrite_existing);
        p.model = qs::openModel(tmp("self-00001-of-00001.gguf"));
        p.splitMaxBytes = uint64_t{1} << 40;
        QVERIFY(!qs::validateQuantize(p).empty());
    }

    // A GGUF k-quant plan cannot become a GPTQ checkpoint: refused with the reasons, nothing written.
    void checkpointTargetRefusesWhatItCannotWrite()
    {
        auto p = paramsFor("tiny-mix.gguf", false, "ct");
        p.target = qs::QuantizeTarget::Gptq;
        qs::QuantizeJob job(p);
        QCOMPARE(job.run(), qs::JobStatus::Failed);
        QVERIFY2(!job.errorMessage().empty(), "no reason given");
        QVERIFY(!fs::exists(p.output));
    }

    // The checkpoint writers run through the same job: an INT8 per-channel compressed-tensors checkpoint of
    // the bundled HF sample, reopened with our loader. The prediction is compressed-tensors' own layout
    // (F32 scales, no zero points when symmetric, no g_idx): 504,080 bytes, which the plan's GPTQ-layout
    // size model (511,640) used to report.
    void compressedTensorsThroughTheJob()
    {
        qs::QuantizeParams p;
        p.model = qs::openModel(QS_SAMPLE_DIR "/stories260K/hf-f32");
        p.target = qs::QuantizeTarget::CompressedTensors;
        for (const auto& t : p.model->tensors())
            if (t.shape.size() == 2 && t.name.find("layers.") != std::string::npos)
                p.plan.assign(t.name, "INT8-ch-sym");
        p.output = tmp("ct-out");
        qs::QuantizeJob job(p);
        QVERIFY2(job.run() == qs::JobStatus::Succeeded, job.errorMessage().c_str());
        QCOMPARE(job.result().weightBytesWritten, uint64_t(504080));
        QCOMPARE(job.result().predictedWeightBytes, uint64_t(504080));
        auto reopened = qs::openModel(p.output);
        QCOMPARE(reopened->tensors().size(), p.model->tensors().size());
    }

    // For every target, the tensor data written (counted from the output files' own headers) equals the
    // prediction, and the per-tensor report has one entry per tensor whose bytes add up to it and whose SQNR
    // is that of the values our loader decodes from the output (every row is sampled on these small tensors).
    void everyTargetWritesWhatItPredicts_data()
    {
        QTest::addColumn<QString>("target");
        QTest::addColumn<QString>("mix");
        QTest::newRow("gguf") << "gguf" << "";
        QTest::newRow("compressed-tensors") << "compressed-tensors" << "INT4-g32-asym,INT4-ch-sym,INT8-g64-sym,FP8-E4M3-ch";
        QTest::newRow("gptq") << "gptq" << "INT4-g32-sym,INT4-g32-asym,INT8-ch-asym,INT8-ch-asym";
        QTest::newRow("fake-quant") << "fake-quant" << "Q4_0,INT3-g32-asym,NF4,FP8-E5M2";
    }

    void everyTargetWritesWhatItPredicts()
    {
        QFETCH(QString, target);
        QFETCH(QString, mix);
        qs::QuantizeParams p;
        p.target = *qs::quantizeTargetFromName(target.toStdString());
        if (p.target == qs::QuantizeTarget::Gguf) {
            p = paramsFor("tiny-mix.gguf", false, "predict.gguf");
        } else {
            // attention q/k/v, attention o, MLP gate/up, MLP down (172 columns) get the four formats.
            const QStringList f = mix.split(QLatin1Char(','));
            p.model = qs::openModel(QS_SAMPLE_DIR "/stories260K/hf-f32");
            for (const auto& t : p.model->tensors()) {
                if (t.shape.size() != 2 || t.name.find("layers.") == std::string::npos)
                    continue;
                const bool down = t.name.find("down_proj") != std::string::npos;
                const bool mlp = t.name.find("mlp.") != std::string::npos;
                const bool o = t.name.find("o_proj") != std::string::npos;
                p.plan.assign(t.name, f[down ? 3 : mlp ? 2 : o ? 1 : 0].toStdString());
            }
            p.output = tmp("predict-" + target.toStdString());
        }
        QVERIFY(qs::quantizeTargetProblems(p.target, *p.model, p.plan).empty());
        uint64_t predicted = 0;
        for (const auto& t : p.model->tensors())
            predicted += qs::predictedTensorBytes(p.target, p.plan, t);
        qs::QuantizeJob job(p);
        QVERIFY2(job.run() == qs::JobStatus::Succeeded, job.errorMessage().c_str());
        const auto& r = job.result();
        QCOMPARE(r.predictedWeightBytes, predicted);
        QCOMPARE(r.weightBytesWritten, r.predictedWeightBytes);

        // Tensor data from the files: GGUF, the tensors' sizes in the reopened model; safetensors, each
        // file's size minus its 8-byte length and its JSON header.
        uint64_t data = 0;
        if (p.target == qs::QuantizeTarget::Gguf) {
            const auto written = qs::openModel(r.files[0]); // held: a temporary's tensors() would dangle
            for (const auto& t : written->tensors())
                data += t.bytes;
        } else {
            for (const auto& f : r.files) {
                if (f.extension() != ".safetensors")
                    continue;
                uint64_t header = 0;
                std::ifstream in(f, std::ios::binary);
                in.read(reinterpret_cast<char*>(&header), 8);
                data += fs::file_size(f) - 8 - header;
            }
        }
        QCOMPARE(data, r.weightBytesWritten);

        QCOMPARE(r.tensors.size(), p.model->tensors().size());
        uint64_t sum = 0;
        const auto reopened = qs::openModel(p.target == qs::QuantizeTarget::Gguf ? r.files[0] : p.output);
        int measured = 0;
        for (size_t i = 0; i < r.tensors.size(); ++i) {
            const auto& q = r.tensors[i];
            const auto& t = p.model->tensors()[i];
            QCOMPARE(q.name, t.name);
            sum += q.bytes;
            QCOMPARE(q.copied, !p.plan.formatOf(t.name));
            if (q.copied) {
                QVERIFY(std::isinf(q.sqnrDb) && q.sqnrDb > 0);
                continue;
            }
            // Our loader's decode of the output against the input, every value.
            const qs::TensorInfo* back = reopened->find(t.name);
            QVERIFY2(back, t.name.c_str());
            std::vector<float> x(t.elements()), y(t.elements());
            p.model->decode(t, 0, x.size(), x.data());
            reopened->decode(*back, 0, y.size(), y.data());
            const auto m = qs::computeErrorMetrics(x.data(), y.data(), t.rows(), t.columns());
            QVERIFY2(std::isfinite(q.sqnrDb), t.name.c_str());
            QCOMPARE(q.sampledValues, t.elements());
            QVERIFY2(std::abs(q.sqnrDb - m.sqnrDb) < 1e-6, (t.name + ": " + std::to_string(q.sqnrDb) + " vs " +
                                                             std::to_string(m.sqnrDb)).c_str());
            QVERIFY(q.sqnrDb > 5 && q.sqnrDb < 60);
            ++measured;
        }
        QCOMPARE(sum, r.weightBytesWritten);
        QVERIFY(measured >= 9);
    }

    // Large tensors are measured on a sample of whole rows: every stride-th row, about 2^18 values.
    void sqnrSample()
    {
        QCOMPARE(qs::sqnrRowStride(64, 64), uint64_t(1));
        QCOMPARE(qs::sqnrRowStride(4096, 4096), uint64_t(64)); // 64 rows of 4096
        QCOMPARE(qs::sqnrRowStride(4097, 4096), uint64_t(65));
        QCOMPARE(qs::sqnrRowStride(10, uint64_t(1) << 20), uint64_t(10)); // one row longer than the sample
        QCOMPARE(qs::sqnrRowStride(0, 0), uint64_t(1));
    }
};

QTEST_GUILESS_MAIN(TestQuantize)
#include "tst_quantize.moc"
