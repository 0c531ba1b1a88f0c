// Issue 13 items 3 and 4: weights are quantized as a runtime sees them, one row per output channel, whatever
// the source layout (core/model/matrixview.h). A Keras / Paddle [in, out] matrix and its PyTorch [out, in]
// transpose give bit-identical sensitivity cells and the same quantized values; a convolution kernel is
// measured flattened per output channel, the same in OIHW and in Keras layout.
#include "core/io/checkpointwriter.h"
#include "core/model/matrixview.h"
#include "core/model/model.h"
#include "core/plan/modellayout.h"
#include "core/plan/plan.h"
#include "core/quant/format.h"
#include "core/quant/metrics.h"
#include "core/quant/sensitivity.h"
#include "core/util/error.h"
#include "core/util/job.h"
#include "widgets/safetensors_writer.h"

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QTemporaryDir>
#include <QTest>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>

namespace fs = std::filesystem;
using qstest::F32Tensor;

namespace {

const std::string kPpocr = QS_TEST_DATA "/ppocr/model.safetensors";
const std::string kKeras = QS_TEST_DATA "/hdf5/keras_model.h5";

// Every format family: bf16, ggml blocks (32 and 256), integer per channel / per group / per tensor, FP8 per
// tensor and per channel, NF4.
const std::vector<std::string> kFormats = {
    "BF16",     "Q8_0",        "Q4_K", "INT8-ch-sym", "INT4-g32-sym", "INT4-g128-asym", "INT8-tensor-sym",
    "FP8-E4M3", "FP8-E5M2-ch", "NF4"};

std::vector<float> decodeAll(const qs::Model& m, const qs::TensorInfo& t)
{
    std::vector<float> v(t.elements());
    m.decodeRows(t, 0, t.rows(), v.data());
    return v;
}

// [a, b] row-major -> [b, a], written independently of core/model/matrixview.cpp.
std::vector<float> transposed(const std::vector<float>& v, uint64_t a, uint64_t b)
{
    std::vector<float> out(v.size());
    for (uint64_t i = 0; i < a; ++i)
        for (uint64_t j = 0; j < b; ++j)
            out[j * a + i] = v[i * b + j];
    return out;
}

std::shared_ptr<qs::Model> writeAndOpen(const QTemporaryDir& dir, const QString& name,
                                        const std::vector<F32Tensor>& tensors)
{
    // One folder per model: a safetensors file opens with the other shards of its folder.
    const QString path = dir.filePath(name);
    if (!QDir().mkpath(QFileInfo(path).path()) || !qstest::writeSafetensorsF32(path, tensors))
        return nullptr;
    return qs::openModel(path.toStdString());
}

std::vector<qs::SensitivityResult> measure(const qs::Model& m, uint64_t chunkElements = uint64_t(1) << 22)
{
    qs::SensitivityOptions o;
    o.formats = kFormats;
    o.threads = 2;
    o.chunkElements = chunkElements;
    return qs::computeSensitivity(m, o);
}

bool same(double a, double b)
{
    return std::memcmp(&a, &b, sizeof a) == 0;
}

// Cell by cell (tensor names may differ): shape, bytes, error and every metric bit for bit.
void compareCells(const std::vector<qs::SensitivityResult>& a, const std::vector<qs::SensitivityResult>& b)
{
    QCOMPARE(a.size(), b.size());
    int measured = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        const auto &x = a[i], &y = b[i];
        const std::string where = x.tensor + " / " + y.tensor + " " + x.format;
        QVERIFY2(x.format == y.format, where.c_str());
        QVERIFY2(x.rows == y.rows && x.cols == y.cols && x.bytes == y.bytes, where.c_str());
        QVERIFY2(x.ok() == y.ok(), (where + ": " + x.error + " | " + y.error).c_str());
        if (!x.ok())
            continue;
        QVERIFY2(x.metrics.count == y.metrics.count, where.c_str());
        QVERIFY2(same(x.metrics.mse, y.metrics.mse), where.c_str());
        QVERIFY2(same(x.metrics.relMse, y.metrics.relMse), where.c_str());
        QVERIFY2(same(x.metrics.sqnrDb, y.metrics.sqnrDb), where.c_str());
        QVERIFY2(same(x.metrics.maxAbsErr, y.metrics.maxAbsErr), where.c_str());
        QVERIFY2(same(x.metrics.cosine, y.metrics.cosine), where.c_str());
        QVERIFY2(same(x.metrics.meanSquare, y.metrics.meanSquare), where.c_str());
        ++measured;
    }
    QVERIFY(measured > 0);
}

// A cell against a direct whole-matrix round trip of the given rows x cols matrix.
void checkCell(const qs::SensitivityResult& r, const std::vector<float>& rowsOfView, uint64_t rows,
               uint64_t cols)
{
    const auto f = qs::findFormat(r.format);
    QVERIFY(f);
    QCOMPARE(r.rows, rows);
    QCOMPARE(r.cols, cols);
    if (!f->supports(rows, cols)) {
        QVERIFY2(!r.ok(), (r.tensor + " " + r.format).c_str());
        return;
    }
    QVERIFY2(r.ok(), (r.tensor + " " + r.format + ": " + r.error).c_str());
    std::vector<float> y(rowsOfView.size());
    f->roundTrip(rowsOfView.data(), rows, cols, y.data());
    const auto m = qs::computeErrorMetrics(rowsOfView.data(), y.data(), rows, cols);
    const double tol = 1e-12 * std::max(std::fabs(m.mse), 1e-300);
    QVERIFY2(std::fabs(r.metrics.mse - m.mse) <= tol, (r.tensor + " " + r.format).c_str());
    QCOMPARE(r.metrics.maxAbsErr, m.maxAbsErr);
    QCOMPARE(r.bytes, *f->storedBytes(rows, cols));
}

} // namespace

class TestSensitivityLayout : public QObject {
    Q_OBJECT
    QTemporaryDir m_dir;

private slots:
    void views()
    {
        const auto keras = qs::openModel(kKeras);
        const auto* conv = keras->find("conv2d/kernel:0"); // [3, 3, 1, 2]
        const auto* dense = keras->find("dense/kernel:0"); // [8, 3]
        QVERIFY(conv && dense);
        auto v = qs::matrixViewOf(*keras, *conv);
        QVERIFY(v.transposed);
        QCOMPARE(v.rows, uint64_t(2));
        QCOMPARE(v.cols, uint64_t(9));
        v = qs::matrixViewOf(*keras, *dense);
        QVERIFY(v.transposed);
        QCOMPARE(v.rows, uint64_t(3));
        QCOMPARE(v.cols, uint64_t(8));

        const auto ppocr = qs::openModel(kPpocr);
        v = qs::matrixViewOf(*ppocr, *ppocr->find("linear_85.w_0")); // Paddle Linear [in 120, out 6625]
        QVERIFY(v.transposed);
        QCOMPARE(v.rows, uint64_t(6625));
        QCOMPARE(v.cols, uint64_t(120));
        v = qs::matrixViewOf(*ppocr, *ppocr->find("conv2d_142.w_0")); // OIHW [60, 480, 1, 3]
        QVERIFY(!v.transposed);
        QCOMPARE(v.rows, uint64_t(60));
        QCOMPARE(v.cols, uint64_t(480 * 3));
        for (const auto& t : ppocr->tensors()) // every weight tensor of PP-OCR is in the matrix now
            if (t.shape.size() >= 2)
                QVERIFY2(qs::isSensitivityCandidate(t),
                         (t.name + ": " + qs::sensitivitySkipReason(t)).c_str());
    }

    // Keras DepthwiseConv2D [kh 3, kw 3, in 4, multiplier 2]: 8 output channels (i * 2 + m), each filtering
    // one input, so each row holds that channel's 9 kernel positions (read as [..., in, out] it would be 2
    // rows of 36 mixing the inputs).
    void kerasDepthwiseKernel()
    {
        qs::Model m(qs::ModelFormat::Keras, "dw.keras");
        qs::TensorInfo info;
        info.name = "depthwise_conv2d/depthwise_kernel:0";
        info.shape = {3, 3, 4, 2};
        info.bytes = 72 * 4;
        m.addTensor(info);
        m.finalize();
        const auto& k = m.tensors().front();
        const auto v = qs::matrixViewOf(m, k);
        QVERIFY(v.transposed);
        QCOMPARE(v.rows, uint64_t(8));
        QCOMPARE(v.cols, uint64_t(9));
        QCOMPARE(k.matrixRows(), uint64_t(8));
        QCOMPARE(k.matrixColumns(), uint64_t(9));
        std::vector<float> stored(72), rows(72), back(72);
        for (int pos = 0; pos < 9; ++pos)
            for (int i = 0; i < 4; ++i)
                for (int mult = 0; mult < 2; ++mult)
                    stored[(pos * 4 + i) * 2 + mult] = float(100 * (i * 2 + mult) + pos);
        qs::storedToView(v, stored.data(), rows.data());
        for (int c = 0; c < 8; ++c)
            for (int pos = 0; pos < 9; ++pos)
                QCOMPARE(rows[c * 9 + pos], float(100 * c + pos));
        qs::viewToStored(v, rows.data(), back.data());
        QVERIFY(back == stored);
    }

    // The reader's window: any window size, any read pattern gives the transposed rows.
    void readerWindows()
    {
        const auto ppocr = qs::openModel(kPpocr);
        const auto& t = *ppocr->find("linear_80.w_0"); // [240, 120]
        const auto stored = decodeAll(*ppocr, t);
        const auto want = transposed(stored, 240, 120);
        for (const uint64_t window : {uint64_t(1), uint64_t(1000), uint64_t(240 * 37), uint64_t(1) << 24}) {
            qs::MatrixRowReader reader(*ppocr, t, window);
            std::vector<float> got(want.size());
            for (uint64_t r = 0; r < 120; r += 7) {
                const uint64_t n = std::min<uint64_t>(7, 120 - r);
                reader.read(r, n, got.data() + r * 240);
            }
            QVERIFY(got == want);
            std::vector<float> one(240);
            reader.read(3, 1, one.data()); // backwards: reloads
            QVERIFY(std::equal(one.begin(), one.end(), want.begin() + 3 * 240));
            if (window >= 240 * 120)
                QCOMPARE(reader.windowLoads(), uint64_t(1));
        }
        std::vector<float> view(want.size()), back(want.size());
        const auto mv = qs::matrixViewOf(*ppocr, t);
        qs::storedToView(mv, stored.data(), view.data());
        QVERIFY(view == want);
        qs::viewToStored(mv, view.data(), back.data());
        QVERIFY(back == stored);
    }

    // Real PP-OCR Linear weights stored [in, out] (Paddle) against the same values stored [out, in]
    // (PyTorch): bit-identical cells, also when the transposed tensors are read through many small windows.
    void paddleAndPytorchLayoutsAgree()
    {
        const auto ppocr = qs::openModel(kPpocr);
        std::vector<F32Tensor> paddle, torch;
        for (const char* name : {"linear_77.w_0", "linear_80.w_0", "linear_85.w_0"}) {
            const auto& t = *ppocr->find(name);
            const auto v = decodeAll(*ppocr, t);
            paddle.push_back({t.name, t.shape, v});
            torch.push_back({std::string(name) + ".weight",
                             {t.shape[1], t.shape[0]},
                             transposed(v, t.shape[0], t.shape[1])});
        }
        const auto a = writeAndOpen(m_dir, QStringLiteral("paddle/model.safetensors"), paddle);
        const auto b = writeAndOpen(m_dir, QStringLiteral("torch/model.safetensors"), torch);
        QVERIFY(a && b);
        const auto ca = measure(*a), cb = measure(*b);
        compareCells(ca, cb);
        if (QTest::currentTestFailed())
            return;
        // Chunks of 8 rows (the sums per chunk round the same way in both), windows of 4000 values: the
        // transposed linear_85 is decoded ~200 times, its strips scattered into each window.
        compareCells(measure(*a, 1000), measure(*b, 1000));
        if (QTest::currentTestFailed())
            return;
        // And against an independent round trip of the [out, in] matrix.
        for (const auto& r : cb) {
            const auto& t = *b->find(r.tensor);
            checkCell(r, decodeAll(*b, t), t.shape[0], t.shape[1]);
        }
        // Groups run along the 120 inputs: INT4-g32 has ceil(120 / 32) = 4 groups per output row, so its
        // stored size is that of 6625 rows of 120 (the [in, out] reading would have 6625 / 32 per row of
        // 120).
        for (const auto& r : ca)
            if (r.tensor == "linear_85.w_0") {
                QCOMPARE(r.rows, uint64_t(6625));
                QCOMPARE(r.cols, uint64_t(120));
            }
    }

    // GPT-2's Conv1D weights are [in, out] (y = x W): c_attn [64, 192] and c_fc [64, 256] of a model_type
    // "gpt2" checkpoint give the cells of the same values as Linear [out, in] weights, bit for bit.
    // GPT-BigCode uses the same names with Linear [out, in]: read as stored.
    void gpt2Conv1dIsTransposed()
    {
        std::mt19937 rng(11);
        std::normal_distribution<float> d(0.f, 0.02f);
        std::vector<float> qkv(64 * 192), fc(64 * 256);
        for (auto& x : qkv)
            x = d(rng);
        for (auto& x : fc)
            x = d(rng);
        auto config = [&](const QString& folder, const char* type) {
            QDir().mkpath(m_dir.filePath(folder));
            QFile f(m_dir.filePath(folder + QStringLiteral("/config.json")));
            return f.open(QIODevice::WriteOnly) &&
                   f.write(QByteArray("{\"model_type\":\"") + type +
                           "\",\"n_embd\":64,\"n_head\":4,\"n_layer\":1,\"vocab_size\":100,\"n_positions\":128}") > 0;
        };
        QVERIFY(config(QStringLiteral("gpt2"), "gpt2") && config(QStringLiteral("bigcode"), "gpt_bigcode"));
        const auto gpt2 = writeAndOpen(m_dir, QStringLiteral("gpt2/model.safetensors"),
                                       {{"h.0.attn.c_attn.weight", {64, 192}, qkv},
                                        {"h.0.mlp.c_fc.weight", {64, 256}, fc}});
        const auto linear = writeAndOpen(m_dir, QStringLiteral("linear/model.safetensors"),
                                         {{"model.layers.0.self_attn.qkv_proj.weight", {192, 64},
                                           transposed(qkv, 64, 192)},
                                          {"model.layers.0.mlp.up_proj.weight", {256, 64}, transposed(fc, 64, 256)}});
        const auto bigcode = writeAndOpen(m_dir, QStringLiteral("bigcode/model.safetensors"),
                                          {{"h.0.attn.c_attn.weight", {192, 64}, transposed(qkv, 64, 192)}});
        QVERIFY(gpt2 && linear && bigcode);
        QCOMPARE(gpt2->config().architecture, std::string("gpt2"));
        const auto* c = gpt2->find("h.0.attn.c_attn.weight");
        QVERIFY(qs::isChannelsLast(*gpt2, *c));
        QCOMPARE(c->matrixRows(), uint64_t(192));
        QCOMPARE(c->matrixColumns(), uint64_t(64));
        const auto* b = bigcode->find("h.0.attn.c_attn.weight");
        QVERIFY(!qs::isChannelsLast(*bigcode, *b));
        QCOMPARE(b->matrixRows(), uint64_t(192));
        compareCells(measure(*gpt2), measure(*linear));
    }

    // The Keras fixture's Conv2D kernel [3, 3, 1, 2] and Dense kernel [8, 3] against OIHW [2, 1, 3, 3] and
    // [3, 8] in a safetensors file: one row per output channel (kh·kw·in = in·kh·kw values here, in = 1).
    void kerasAndOihwAgree()
    {
        const auto keras = qs::openModel(kKeras);
        const auto& conv = *keras->find("conv2d/kernel:0");
        const auto& dense = *keras->find("dense/kernel:0");
        QVERIFY(qs::isSensitivityCandidate(conv));
        const auto kc = decodeAll(*keras, conv), kd = decodeAll(*keras, dense);
        // OIHW[o][i][h][w] = K[h][w][i][o]
        std::vector<float> oihw(kc.size());
        for (uint64_t h = 0; h < 3; ++h)
            for (uint64_t w = 0; w < 3; ++w)
                for (uint64_t o = 0; o < 2; ++o)
                    oihw[o * 9 + h * 3 + w] = kc[(h * 3 + w) * 2 + o];
        const auto torch =
            writeAndOpen(m_dir, QStringLiteral("oihw/model.safetensors"),
                         {{"conv.weight", {2, 1, 3, 3}, oihw}, {"fc.weight", {3, 8}, transposed(kd, 8, 3)}});
        QVERIFY(torch);
        qs::SensitivityOptions o;
        o.formats = kFormats;
        o.tensorFilter = [](const qs::TensorInfo& t) { return t.shape.size() >= 2; };
        const auto ck = qs::computeSensitivity(*keras, o), ct = qs::computeSensitivity(*torch, o);
        QCOMPARE(ck.size(), 2 * kFormats.size()); // both kernels of the U-Net-like fixture, every format
        compareCells(ck, ct);
        for (size_t i = 0; i < kFormats.size(); ++i)
            checkCell(ct[i], oihw, 2, 9);
    }

    // A bigger kernel, OIHW [out 24, in 16, 3, 3], quantized per output row of in·kh·kw = 144 values against
    // an independent flattening; Q8_0 / NF4 / INT4-g32 blocks divide 144 or not as for any 2-D row.
    void oihwKernelRows()
    {
        std::mt19937 rng(7);
        std::student_t_distribution<float> d(3);
        std::vector<float> k(24 * 16 * 9);
        for (auto& x : k)
            x = 0.05f * d(rng);
        const auto m = writeAndOpen(m_dir, QStringLiteral("conv/model.safetensors"),
                                    {{"features.0.conv.weight", {24, 16, 3, 3}, k}});
        QVERIFY(m);
        const auto cells = measure(*m);
        QCOMPARE(cells.size(), kFormats.size());
        for (const auto& r : cells)
            checkCell(r, k, 24, 144);
        for (const auto& r : cells)
            if (r.format == "Q4_K") // 256 does not divide 144: cannot store, as for a 2-D row of 144
                QVERIFY(!r.ok() && r.error.find("does not support a 24 x 144") != std::string::npos);
    }

    // A plan counts a tensor as the matrix it is quantized as: on PP-OCR (Paddle Linear [in, out] and OIHW
    // kernels) the planned bytes of every weight in every format equal the sensitivity cell's exact bytes.
    // Hand-checked: conv2d_142.w_0 [60, 480, 1, 3] in INT8-ch is 60 rows of 1,440 (60 scales), not 28,800
    // stored rows of 3 (28,800 scales); a Q4_K block of 256 cannot hold its rows of 1,440 (5.625 blocks).
    void planBytesFollowTheView()
    {
        const auto m = qs::openModel(kPpocr);
        const auto layout = qs::layoutFromModel(*m);
        const auto cells = measure(*m);
        size_t compared = 0;
        for (const auto& r : cells) {
            if (!r.ok())
                continue;
            qs::Plan p;
            p.assign(r.tensor, r.format);
            QCOMPARE(qs::plannedBytes(p, *layout.find(r.tensor)), r.bytes);
            ++compared;
        }
        QVERIFY2(compared > 300, std::to_string(compared).c_str()); // 47 weights x 10 formats, less unstorable

        const auto* conv = layout.find("conv2d_142.w_0");
        QVERIFY(conv);
        QCOMPARE(conv->matrixRows(), uint64_t(60));
        QCOMPARE(conv->matrixColumns(), uint64_t(1440));
        const auto int8 = qs::findFormat("INT8-ch-sym");
        qs::Plan p;
        p.assign(conv->name, "INT8-ch-sym");
        QCOMPARE(qs::plannedBytes(p, *conv), *int8->storedBytes(60, 1440));
        QVERIFY(*int8->storedBytes(60, 1440) < *int8->storedBytes(28800, 3));
        p.assign(conv->name, "Q4_K");
        const auto issues = qs::checkPlan(p, layout);
        QVERIFY(std::any_of(issues.begin(), issues.end(), [](const qs::PlanIssue& i) {
            return i.kind == qs::PlanIssueKind::UnsupportedShape &&
                   i.message.find("rows of 1440 values") != std::string::npos;
        }));
        // Paddle Linear [in 120, out 6625]: per output channel, 6625 rows of 120.
        const auto* fc = layout.find("linear_85.w_0");
        QVERIFY(fc);
        QCOMPARE(fc->matrixRows(), uint64_t(6625));
        QCOMPARE(fc->matrixColumns(), uint64_t(120));
        p.assign(fc->name, "INT8-ch-sym");
        QCOMPARE(qs::plannedBytes(p, *fc), *int8->storedBytes(6625, 120));
    }

    // Hand-checked: Paddle Linear [in 4, out 3], INT4 asymmetric, one group per output channel (4 < 128).
    // Channel 0 {0, 1, 2, 15}: scale 1, exact. Channel 1 {0, .5, 1.5, 7.5}: scale .5, exact. Channel 2
    // {0, 1.25, 3, 15}: scale 1, 1.25 -> 1. Grouped along the stored rows instead (the output axis), row
    // {2, 1.5, 3} would get scale 3/15 = .2 and 1.5 would become 1.6. The fake-quant file keeps [4, 3].
    void handCheckedInt4AlongInputs()
    {
        const std::vector<float> stored = {0, 0, 0, 1, 0.5f, 1.25f, 2, 1.5f, 3, 15, 7.5f, 15};
        const auto model =
            writeAndOpen(m_dir, QStringLiteral("hand/model.safetensors"), {{"linear_0.w_0", {4, 3}, stored}});
        QVERIFY(model);
        qs::SensitivityOptions o;
        o.formats = {"INT4-g128-asym"};
        const auto cells = qs::computeSensitivity(*model, o);
        QCOMPARE(cells.size(), size_t(1));
        QVERIFY(cells[0].ok());
        QCOMPARE(cells[0].rows, uint64_t(3));
        QCOMPARE(cells[0].cols, uint64_t(4));
        const double e = 1.25 - 1.0;
        QCOMPARE(cells[0].metrics.mse, e * e / 12);
        QCOMPARE(cells[0].metrics.maxAbsErr, e);

        qs::Plan plan;
        plan.assign("linear_0.w_0", "INT4-g128-asym");
        QVERIFY(qs::checkpointProblems(qs::CheckpointKind::FakeQuant, *model, plan).empty());
        const fs::path out = fs::path(m_dir.filePath(QStringLiteral("hand-fake")).toStdString());
        qs::JobControl job;
        qs::writeFakeQuant(*model, plan, out, &job);
        const auto written = qs::openModel(out / "model.safetensors");
        const auto* t = written->find("linear_0.w_0");
        QVERIFY(t);
        QCOMPARE(t->shape, (std::vector<uint64_t>{4, 3}));
        const std::vector<float> want = {0, 0, 0, 1, 0.5f, 1, 2, 1.5f, 3, 15, 7.5f, 15};
        QCOMPARE(decodeAll(*written, *t), want);
    }

    // Fake-quant of [in, out] and of its [out, in] transpose: the same values once transposed back.
    void fakeQuantKeepsLayout()
    {
        const auto ppocr = qs::openModel(kPpocr);
        const auto& t = *ppocr->find("linear_81.w_0"); // [120, 360]
        const auto v = decodeAll(*ppocr, t);
        const auto a =
            writeAndOpen(m_dir, QStringLiteral("fp/model.safetensors"), {{"linear_81.w_0", t.shape, v}});
        const auto b = writeAndOpen(m_dir, QStringLiteral("ft/model.safetensors"),
                                    {{"linear_81.weight", {360, 120}, transposed(v, 120, 360)}});
        QVERIFY(a && b);
        for (const char* format : {"INT4-g32-sym", "INT8-ch-sym", "NF4", "FP8-E5M2-ch"}) {
            qs::Plan pa, pb;
            pa.assign("linear_81.w_0", format);
            pb.assign("linear_81.weight", format);
            const fs::path oa =
                fs::path(m_dir.filePath(QStringLiteral("fpo-") + QLatin1String(format)).toStdString());
            const fs::path ob =
                fs::path(m_dir.filePath(QStringLiteral("fto-") + QLatin1String(format)).toStdString());
            qs::JobControl ja, jb;
            qs::writeFakeQuant(*a, pa, oa, &ja);
            qs::writeFakeQuant(*b, pb, ob, &jb);
            const auto wa = qs::openModel(oa / "model.safetensors");
            const auto wb = qs::openModel(ob / "model.safetensors");
            const auto& ta = *wa->find("linear_81.w_0");
            QCOMPARE(ta.shape, t.shape);
            const auto qa = decodeAll(*wa, ta);
            const auto qb = decodeAll(*wb, *wb->find("linear_81.weight"));
            QVERIFY2(qa == transposed(qb, 360, 120), format);
            QVERIFY2(qa != v, format);
        }
    }
};

QTEST_APPLESS_MAIN(TestSensitivityLayout)
#include "tst_sensitivity_layout.moc"
