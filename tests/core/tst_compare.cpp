// Comparing two opened models tensor by tensor (core/quant/compare.h): the sample's GGUF against its Hugging
// Face layout (identical once llama.cpp's q/k row permutation is undone), llama-quantize's output against its
// F16 input (every metric and the difference's bounds equal a direct computation over the whole tensors),
// unmatched and mismatched tensors named with the reason, and cancel.
#include "core/model/model.h"
#include "core/quant/compare.h"
#include "core/quant/metrics.h"
#include "core/util/error.h"
#include "core/util/job.h"

#include <QtTest>
#include <cmath>
#include <filesystem>

namespace fs = std::filesystem;

namespace {
const fs::path kSample = QS_SAMPLE_DIR "/stories260K";
const fs::path kRef = fs::path(QS_TEST_DATA) / "reference/llama-quantize";
} // namespace

class TestCompare : public QObject {
    Q_OBJECT

private slots:
    void ggufAgainstHuggingFaceIsIdentical()
    {
        qs::CompareParams p;
        p.reference = qs::openModel(kSample / "stories260K.gguf");
        p.candidatePath = kSample / "hf-f32";
        const qs::CompareResult r = qs::compareModels(p);
        QCOMPARE(r.tensors.size(), p.reference->tensors().size());
        int permuted = 0;
        for (const auto& t : r.tensors) {
            QVERIFY2(t.ok(), t.error.c_str());
            QCOMPARE(t.metrics.mse, 0.0);
            QCOMPARE(t.metrics.count, t.rows * t.cols);
            QVERIFY(std::isinf(t.metrics.sqnrDb));
            QCOMPARE(t.difference.total(), t.rows * t.cols);
            QCOMPARE(t.difference.keys().size(), size_t(1)); // all differences are zero
            permuted += t.ropePermuted;
            if (t.reference == "blk.2.attn_k.weight") {
                QCOMPARE(t.candidate, std::string("model.layers.2.self_attn.k_proj.weight"));
                QVERIFY(t.ropePermuted);
            }
        }
        QCOMPARE(permuted, 10); // q and k of 5 layers
        QVERIFY(r.onlyInCandidate.empty());
    }

    void quantizedPairMatchesDirectComputation()
    {
        auto ref = qs::openModel(kRef / "tiny-F16.gguf");
        auto cand = qs::openModel(kRef / "tiny-mix.gguf");
        for (unsigned threads : {1u, 2u}) {
            qs::CompareParams p;
            p.reference = ref;
            p.candidate = cand;
            p.threads = threads;
            p.chunkElements = 5000; // several chunks per tensor
            const qs::CompareResult r = qs::compareModels(p);
            QCOMPARE(r.tensors.size(), ref->tensors().size());
            int quantized = 0;
            for (const auto& t : r.tensors) {
                QVERIFY2(t.ok(), t.error.c_str());
                const qs::TensorInfo& a = *ref->find(t.reference);
                const qs::TensorInfo& b = *cand->find(t.candidate);
                std::vector<float> x(a.elements()), y(b.elements());
                ref->decodeRows(a, 0, a.rows(), x.data());
                cand->decodeRows(b, 0, b.rows(), y.data());
                const qs::ErrorMetrics m = qs::computeErrorMetrics(x.data(), y.data(), a.rows(), a.columns());
                QVERIFY(std::abs(t.metrics.mse - m.mse) <= 1e-9 * std::max(m.mse, 1e-30));
                QCOMPARE(t.metrics.maxAbsErr, m.maxAbsErr);
                QCOMPARE(t.metrics.count, uint64_t(x.size()));
                double lo = INFINITY, hi = -INFINITY;
                for (size_t i = 0; i < x.size(); ++i) {
                    lo = std::min(lo, double(y[i] - x[i]));
                    hi = std::max(hi, double(y[i] - x[i]));
                }
                QCOMPARE(t.differenceBounds.min, lo);
                QCOMPARE(t.differenceBounds.max, hi);
                QCOMPARE(t.difference.total(), uint64_t(x.size()));
                if (a.dtype != b.dtype) {
                    ++quantized;
                    QVERIFY(std::isfinite(t.metrics.sqnrDb) && t.metrics.sqnrDb > 5 && t.metrics.sqnrDb < 60);
                }
            }
            QVERIFY(quantized > 5);
        }
    }

    void mismatchesAreNamed()
    {
        qs::CompareParams p;
        p.reference = qs::openModel(kSample / "stories260K.gguf");
        p.candidatePath = fs::path(QS_TEST_DATA) / "code-3m/quantscope-code-3m-Q8_0.gguf";
        const qs::CompareResult r = qs::compareModels(p);
        const auto find = [&](const std::string& name) -> const qs::TensorComparison& {
            for (const auto& t : r.tensors)
                if (t.reference == name)
                    return t;
            throw std::runtime_error(name);
        };
        QVERIFY(find("blk.0.attn_q.weight").error.find("shapes differ: 64 x 64 against 256 x 256") != std::string::npos);
        QCOMPARE(find("blk.4.attn_q.weight").error, std::string("not in the candidate model")); // code-3m has 4 layers
        QVERIFY(r.onlyInCandidate.empty());
        // A filter limits the comparison.
        p.filter = [](const qs::TensorInfo& t) { return t.name == "output_norm.weight"; };
        QCOMPARE(qs::compareModels(p).tensors.size(), size_t(1));
        p.filter = [](const qs::TensorInfo&) { return false; };
        QVERIFY_THROWS_EXCEPTION(qs::Error, qs::compareModels(p));
    }

    void cancels()
    {
        qs::CompareParams p;
        p.reference = qs::openModel(kRef / "tiny-F16.gguf");
        p.candidatePath = kRef / "tiny-mix.gguf";
        qs::CompareJob job(p);
        job.cancel();
        job.run();
        QCOMPARE(job.status(), qs::JobStatus::Cancelled);
    }
};

QTEST_MAIN(TestCompare)
#include "tst_compare.moc"
