// HDF5 / Keras loading through the sandboxed probe: names, order, shapes, dtypes and decoded values of the
// fixtures written by scripts/make-hdf5-fixtures.py, typed errors for bad files, and a probe that crashes,
// hangs, lies or talks nonsense.
#include "core/io/hdf5.h"
#include "core/io/hdf5_probe.h"
#include "core/io/hdf5_protocol.h"
#include "core/model/model.h"
#include "core/util/error.h"
#include "core/util/job.h"

#include <QElapsedTimer>
#include <QFile>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QTemporaryDir>
#include <QTest>
#include <cmath>
#include <mutex>
#include <thread>

using namespace qs;

namespace {

const std::string kDir = std::string(QS_TEST_DATA) + "/hdf5/";

// The generator's pattern: value i = ((7 i + seed) % 23 - 11) / 8.
std::vector<float> pattern(uint64_t n, int seed, float scale = 1.0f / 8.0f)
{
    std::vector<float> v(n);
    for (uint64_t i = 0; i < n; ++i)
        v[i] = static_cast<float>((static_cast<int64_t>(7 * i) + seed) % 23 - 11) * scale;
    return v;
}

std::vector<float> decodeAll(const Model& m, const TensorInfo& t)
{
    std::vector<float> out(t.elements());
    m.decode(t, 0, t.elements(), out.data());
    return out;
}

const TensorInfo& need(const Model& m, const char* name)
{
    const TensorInfo* t = m.find(name);
    if (!t)
        throw std::runtime_error(std::string("missing tensor ") + name);
    return *t;
}

template <typename F> Error expectError(F&& f)
{
    try {
        f();
    } catch (const Error& e) {
        return e;
    }
    QTest::qFail("expected a qs::Error", __FILE__, __LINE__);
    return Error(ErrorCode::Internal, "no error thrown");
}

bool contains(const std::string& haystack, const std::string& needle)
{
    return haystack.find(needle) != std::string::npos;
}

std::vector<std::string> warnings(const Model& m)
{
    std::vector<std::string> out;
    auto it = m.metadata().find("hdf5.warnings");
    if (it != m.metadata().end())
        for (const auto& v : std::get<MetaArray>(it->second.value))
            out.push_back(v.toString());
    return out;
}

bool anyWarning(const Model& m, const std::string& a, const std::string& b)
{
    for (const auto& w : warnings(m))
        if (contains(w, a) && contains(w, b))
            return true;
    return false;
}

} // namespace

class TestHdf5 : public QObject {
    Q_OBJECT

    QTemporaryDir m_tmp;

    // Writes a stand-in for the probe (a shell script) and returns its path.
    std::string fakeProbe(const char* name, const QByteArray& body)
    {
        const QString path = m_tmp.filePath(QString::fromLatin1(name));
        QFile f(path);
        f.open(QIODevice::WriteOnly);
        f.write("#!/bin/sh\n" + body + "\n");
        f.close();
        f.setPermissions(QFile::ReadOwner | QFile::WriteOwner | QFile::ExeOwner);
        return path.toStdString();
    }

    std::shared_ptr<Model> loadWithFake(const char* name, const QByteArray& body, int timeoutMs = 20000,
                                        const std::string& file = kDir + "keras_model.h5")
    {
        Hdf5Options o;
        o.probe = fakeProbe(name, body);
        o.inactivityTimeoutMs = timeoutMs;
        return loadHdf5(file, nullptr, o);
    }

private slots:
    void kerasModel()
    {
        auto m = openModel(kDir + "keras_model.h5");
        QCOMPARE(m->format(), ModelFormat::Keras);
        QCOMPARE(m->config().architecture, std::string("tiny_convnet"));
        const std::vector<std::pair<std::string, std::vector<uint64_t>>> expected = {
            {"conv2d/kernel:0", {3, 3, 1, 2}},
            {"conv2d/bias:0", {2}},
            {"batch_normalization/gamma:0", {2}},
            {"batch_normalization/beta:0", {2}},
            {"batch_normalization/moving_mean:0", {2}},
            {"batch_normalization/moving_variance:0", {2}},
            {"dense/kernel:0", {8, 3}},
            {"dense/bias:0", {3}},
        };
        QCOMPARE(m->tensors().size(), expected.size()); // optimizer state is not a model weight
        for (size_t i = 0; i < expected.size(); ++i) {
            const auto& t = m->tensors()[i];
            QCOMPARE(t.name, expected[i].first);
            QCOMPARE(t.shape, expected[i].second);
            QCOMPARE(t.dtype, DType::F32);
            QCOMPARE(t.fileIndex, 0u);
            QCOMPARE(decodeAll(*m, t), pattern(t.elements(), static_cast<int>(i) + 1));
            // A view into the map of the original file, not a copy.
            const auto raw = m->rawData(t);
            QCOMPARE(raw.data(), m->files()[0]->data() + t.offset);
        }
        QCOMPARE(m->files().size(), size_t(1));
        QCOMPARE(m->parameterCount(), uint64_t(18 + 2 + 8 + 24 + 3));
        QCOMPARE(m->metadata().at("keras_version").toString(), std::string("2.15.0"));
        QCOMPARE(m->metadata().at("backend").toString(), std::string("tensorflow"));
        QCOMPARE(m->metadata().at("keras.class_name").toString(), std::string("Sequential"));
        QCOMPARE(m->metadata().at("keras.optimizer_datasets_ignored").toString(), std::string("1"));
        QVERIFY(!m->find("optimizer_weights/training/Adam/iter:0"));
    }

    void kerasSplitAttributes()
    {
        auto m = loadHdf5(kDir + "keras_split.h5", nullptr);
        QCOMPARE(m->format(), ModelFormat::Keras);
        QCOMPARE(m->config().architecture, std::string("keras")); // weights-only file: no model_config
        // layer_names0 = [dense_2, dense], layer_names1 = [dense_1]; dense_1 splits weight_names too.
        const std::vector<std::tuple<std::string, std::vector<uint64_t>, int>> expected = {
            {"dense_2/kernel:0", {5, 2}, 104}, {"dense_2/bias:0", {2}, 105},
            {"dense/kernel:0", {4, 5}, 100},   {"dense/bias:0", {5}, 101},
            {"dense_1/kernel:0", {5, 5}, 102}, {"dense_1/bias:0", {5}, 103},
        };
        QCOMPARE(m->tensors().size(), expected.size());
        for (size_t i = 0; i < expected.size(); ++i) {
            const auto& t = m->tensors()[i];
            QCOMPARE(t.name, std::get<0>(expected[i]));
            QCOMPARE(t.shape, std::get<1>(expected[i]));
            QCOMPARE(decodeAll(*m, t), pattern(t.elements(), std::get<2>(expected[i])));
        }
        QVERIFY(warnings(*m).empty());
    }

    void plainHdf5()
    {
        auto m = openModel(kDir + "plain.h5");
        QCOMPARE(m->format(), ModelFormat::Hdf5);
        auto get = [&](const char* name) -> const TensorInfo& { return need(*m, name); };
        const auto& ints = get("a/b/c/ints");
        QCOMPARE(ints.dtype, DType::I32);
        QCOMPARE(ints.shape, (std::vector<uint64_t>{2, 3}));
        QCOMPARE(decodeAll(*m, ints), pattern(6, 1, 1.0f));

        const auto& half = get("a/half");
        QCOMPARE(half.dtype, DType::F16);
        QCOMPARE(half.bytes, uint64_t(8));
        QCOMPARE(decodeAll(*m, half), pattern(4, 2));

        const auto& u8 = get("u8");
        QCOMPARE(u8.dtype, DType::U8);
        QCOMPARE(decodeAll(*m, u8), (std::vector<float>{0, 40, 80, 120, 160, 200}));
        QCOMPARE(get("i8").dtype, DType::I8);
        QCOMPARE(decodeAll(*m, get("i8")), pattern(5, 3, 1.0f));
        QCOMPARE(get("i64").dtype, DType::I64);
        QCOMPARE(decodeAll(*m, get("i64")), pattern(3, 4, 1.0f));
        QCOMPARE(get("f64").dtype, DType::F64);
        QCOMPARE(decodeAll(*m, get("f64")), pattern(4, 5));
        QCOMPARE(get("flags").dtype, DType::Bool);
        QCOMPARE(decodeAll(*m, get("flags")), (std::vector<float>{1, 0, 1}));
        QVERIFY(get("scalar").shape.empty());
        QCOMPARE(decodeAll(*m, get("scalar")), std::vector<float>{2.5f});

        // Decoded by the probe into the mapped temporary file (file 1).
        const auto& compressed = get("compressed");
        QCOMPARE(compressed.shape, (std::vector<uint64_t>{10, 7}));
        QCOMPARE(compressed.fileIndex, 1u);
        QCOMPARE(decodeAll(*m, compressed), pattern(70, 6));
        QCOMPARE(get("big_endian").dtype, DType::F32);
        QCOMPARE(get("big_endian").fileIndex, 1u);
        QCOMPARE(decodeAll(*m, get("big_endian")), pattern(5, 7));
        QCOMPARE(get("big_endian_i16").dtype, DType::I16);
        QCOMPARE(decodeAll(*m, get("big_endian_i16")), pattern(4, 8, 1.0f));
        QCOMPARE(decodeAll(*m, get("compact")), pattern(3, 9));
        QCOMPARE(get("chunked3d").shape, (std::vector<uint64_t>{3, 4, 5}));
        QCOMPARE(decodeAll(*m, get("chunked3d")), pattern(60, 13));
        QCOMPARE(m->files().size(), size_t(2));

        QCOMPARE(m->tensors().size(), size_t(13));
        QVERIFY(!m->find("names") && !m->find("alias") && !m->find("outside"));
        QVERIFY(anyWarning(*m, "/names", "not a numeric dataset"));
        QVERIFY(anyWarning(*m, "/outside", "external link to keras_model.h5:/model_weights"));
        QVERIFY(anyWarning(*m, "/alias", "soft link"));
        QCOMPARE(m->metadata().at("description").toString(), std::string("quantscope plain HDF5 fixture"));
        QCOMPARE(m->metadata().at("answer").toString(), std::string("42"));
    }

    void noTemporaryDirectory()
    {
        Hdf5Options o;
        o.decodeDir = "/nonexistent/quantscope-test";
        auto m = loadHdf5(kDir + "plain.h5", nullptr, o);
        QVERIFY(m);
        QCOMPARE(m->files().size(), size_t(1));
        QCOMPARE(m->tensors().size(), size_t(13 - 5)); // the five datasets that need decoding are listed
        QCOMPARE(decodeAll(*m, need(*m, "a/half")), pattern(4, 2));
        QVERIFY(anyWarning(*m, "/compressed", "no writable temporary file"));
        QVERIFY(anyWarning(*m, "/big_endian", "no writable temporary file"));
    }

    void externalStorageIsNotRead()
    {
        auto m = loadHdf5(kDir + "external_storage.h5", nullptr);
        QCOMPARE(m->tensors().size(), size_t(1));
        QCOMPARE(m->tensors()[0].name, std::string("inside"));
        QCOMPARE(decodeAll(*m, m->tensors()[0]), pattern(4, 10));
        QVERIFY(anyWarning(*m, "/outside", "external files"));
        QVERIFY(anyWarning(*m, "/virtual", "virtual dataset"));
    }

    void corruptChunkIsReportedNotFatal()
    {
        auto m = loadHdf5(kDir + "corrupt_chunk.h5", nullptr);
        QCOMPARE(m->tensors().size(), size_t(1));
        QCOMPARE(m->tensors()[0].name, std::string("good"));
        QCOMPARE(decodeAll(*m, m->tensors()[0]), pattern(8, 14));
        QVERIFY(anyWarning(*m, "/damaged", "cannot be read"));
    }

    // The probe decodes chunked data in slabs; tiny slabs make it cross chunk and dimension boundaries.
    void probeSlabLoop_data()
    {
        QTest::addColumn<int>("slab");
        for (int slab : {1, 12, 40, 100, 1 << 24})
            QTest::newRow(qPrintable(QString::number(slab))) << slab;
    }
    void probeSlabLoop()
    {
        QFETCH(int, slab);
        const QString copy = m_tmp.filePath(QStringLiteral("slab-%1.bin").arg(slab));
        QFile(copy).open(QIODevice::WriteOnly);
        QProcess p;
        p.start(QString::fromStdString(h5::findProbeExecutable()),
                {QStringLiteral("--copy-to"), copy, QStringLiteral("--copy-limit"), QStringLiteral("1000000"),
                 QStringLiteral("--slab-bytes"), QString::number(slab),
                 QString::fromStdString(kDir + "plain.h5")});
        QVERIFY(p.waitForFinished(30000));
        QCOMPARE(p.exitCode(), 0);
        const QByteArray text = p.readAllStandardOutput();
        const auto out =
            h5::parseProbeOutput(std::string_view(text.constData(), static_cast<size_t>(text.size())));
        QVERIFY(out.complete);
        auto m = h5::buildModel(kDir + "plain.h5", out, MappedFile::open(kDir + "plain.h5"),
                                MappedFile::open(copy.toStdString()));
        QCOMPARE(decodeAll(*m, need(*m, "chunked3d")), pattern(60, 13));
        QCOMPARE(decodeAll(*m, need(*m, "compressed")), pattern(70, 6));
        QCOMPARE(decodeAll(*m, need(*m, "big_endian")), pattern(5, 7));
    }

    void userBlockOffsetsAreAbsolute()
    {
        auto m = loadHdf5(kDir + "userblock.h5", nullptr);
        const auto& t = m->tensors().at(0);
        QVERIFY(t.offset >= 512);
        QCOMPARE(decodeAll(*m, t), pattern(12, 12));
    }

    void notHdf5()
    {
        try {
            loadHdf5(kDir + "not_hdf5.h5", nullptr);
            QFAIL("a text file loaded as HDF5");
        } catch (const FormatError& e) {
            QCOMPARE(e.code(), ErrorCode::BadMagic);
            QCOMPARE(e.file(), kDir + "not_hdf5.h5");
            QCOMPARE(e.offset(), std::optional<uint64_t>(0));
        }
        // openModel dispatches *.h5 without the signature to the HDF5 loader, which rejects it.
        QCOMPARE(expectError([] { openModel(kDir + "not_hdf5.h5"); }).code(), ErrorCode::BadMagic);
        // A Keras 3 .keras archive is a zip: say so rather than "not HDF5".
        const QString zip = m_tmp.filePath(QStringLiteral("model.keras"));
        QFile f(zip);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write(QByteArray("PK\x03\x04", 4) + QByteArray(60, '\0'));
        f.close();
        const Error e = expectError([&] { openModel(zip.toStdString()); });
        QCOMPARE(e.code(), ErrorCode::Unsupported);
        QVERIFY2(contains(e.what(), "zip archive"), e.what());
    }

    void truncated()
    {
        try {
            loadHdf5(kDir + "truncated.h5", nullptr);
            QFAIL("truncated file loaded");
        } catch (const FormatError& e) {
            QCOMPARE(e.code(), ErrorCode::Truncated);
            QCOMPARE(e.file(), kDir + "truncated.h5");
            QCOMPARE(e.offset(), std::optional<uint64_t>(
                                     QFileInfo(QString::fromStdString(kDir + "truncated.h5")).size()));
        }
    }

    void cveReproducersGiveCleanErrors_data()
    {
        QTest::addColumn<QString>("file");
        QTest::newRow("cve-2017-17507") << QStringLiteral("cve-2017-17507.h5");
        QTest::newRow("cve-2024-32609") << QStringLiteral("cve-2024-32609.h5");
    }
    void cveReproducersGiveCleanErrors()
    {
        QFETCH(QString, file);
        const std::string path = std::string(QS_TEST_DATA) + "/bad-inputs/hdf5/" + file.toStdString();
        const Error e = expectError([&] { openModel(path); });
        QVERIFY2(contains(e.what(), file.toStdString()), e.what());
        // 2024-32609 crashes libhdf5 inside the probe; 2017-17507 crashes it only when its compound data
        // is read, which the probe never does, so it is rejected as holding no numeric data.
        if (file.contains(QLatin1String("32609"))) {
            QCOMPARE(e.code(), ErrorCode::Crashed);
            QVERIFY2(contains(e.what(), "SIGSEGV"), e.what());
        }
    }

    void cliExitsNonZeroOnCve()
    {
        const QString cli = QStringLiteral(QS_BIN_DIR "/quantscope-cli");
        // The CLI is built with the tests (tests/CMakeLists.txt): a missing one is a broken build.
        QVERIFY2(QFileInfo::exists(cli), qPrintable(cli + QStringLiteral(" is missing")));
        for (const char* name : {"cve-2017-17507.h5", "cve-2024-32609.h5"}) {
            QProcess p;
            p.start(cli,
                    {QStringLiteral("inspect"), QStringLiteral(QS_TEST_DATA "/bad-inputs/hdf5/") + name});
            QVERIFY(p.waitForFinished(60000));
            QCOMPARE(p.exitStatus(), QProcess::NormalExit);
            QVERIFY(p.exitCode() != 0);
            QVERIFY(p.readAllStandardError().contains(name));
        }
    }

    void probeCrashIsReported()
    {
        const Error e = expectError([&] { loadWithFake("crash.sh", "kill -SEGV $$"); });
        QCOMPARE(e.code(), ErrorCode::Crashed);
        QVERIFY(contains(e.what(), "keras_model.h5"));
        QVERIFY(contains(e.what(), "SIGSEGV"));
    }

    void probeHangIsKilled()
    {
        const Error e = expectError([&] { loadWithFake("hang.sh", "exec sleep 60", 300); });
        QCOMPARE(e.code(), ErrorCode::Crashed);
        QVERIFY2(contains(e.what(), "no progress"), e.what());
    }

    void probeCancel()
    {
        JobControl job;
        std::thread canceller([&] {
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
            job.cancel();
        });
        Hdf5Options o;
        o.probe = fakeProbe("slow.sh", "exec sleep 60");
        try {
            loadHdf5(kDir + "keras_model.h5", &job, o);
            QFAIL("not cancelled");
        } catch (const CancelledError&) {
        }
        canceller.join();
    }

    void probeGarbageIsRejected()
    {
        QCOMPARE(expectError([&] { loadWithFake("garbage.sh", "echo hello; echo '{\"t\":1}'"); }).code(),
                 ErrorCode::Internal); // no version record
        QCOMPARE(expectError([&] {
                     loadWithFake("incomplete.sh", "echo '{\"t\":\"probe\",\"v\":1,\"lib\":\"x\"}'");
                 }).code(),
                 ErrorCode::Crashed);
        QCOMPARE(
            expectError([&] { loadWithFake("exit3.sh", "echo '{\"t\":\"probe\",\"v\":1}'; exit 3"); }).code(),
            ErrorCode::Crashed);
        QCOMPARE(expectError([&] {
                     loadWithFake("v9.sh", "echo '{\"t\":\"probe\",\"v\":9}'; echo '{\"t\":\"end\"}'");
                 }).code(),
                 ErrorCode::Internal);
    }

    // A Keras layer_names entry without its group loads the other layers and says so in the model's
    // warnings (shown by inspect and the GUI), naming the missing group.
    void kerasLayerWithoutGroupIsAWarning()
    {
        const QByteArray records =
            "echo '{\"t\":\"probe\",\"v\":1,\"lib\":\"x\"}'\n"
            "echo '{\"t\":\"group\",\"path\":\"/model_weights\"}'\n"
            "echo '{\"t\":\"group\",\"path\":\"/model_weights/dense\"}'\n"
            "echo '{\"t\":\"attr\",\"obj\":\"/model_weights\",\"name\":\"layer_names\",\"kind\":\"str\","
            "\"values\":[\"dense\",\"ghost\"]}'\n"
            "echo '{\"t\":\"attr\",\"obj\":\"/model_weights/dense\",\"name\":\"weight_names\",\"kind\":\"str\","
            "\"values\":[\"dense/kernel:0\"]}'\n"
            "echo '{\"t\":\"dataset\",\"path\":\"/model_weights/dense/dense/kernel:0\",\"shape\":[4],"
            "\"type\":\"f32\",\"storage\":\"direct\",\"offset\":0,\"bytes\":16}'\n"
            "echo '{\"t\":\"end\",\"objects\":3}'";
        const auto m = loadWithFake("ghost.sh", records);
        QCOMPARE(m->format(), ModelFormat::Keras);
        QCOMPARE(m->tensors().size(), size_t(1));
        QCOMPARE(m->warnings().size(), size_t(1));
        QVERIFY2(contains(m->warnings()[0], "Keras layer ghost is listed in layer_names but the file has no "
                                            "group /model_weights/ghost"),
                 m->warnings()[0].c_str());
    }

    void probeLiesAreCaught()
    {
        const QByteArray head = "echo '{\"t\":\"probe\",\"v\":1,\"lib\":\"x\"}'\n";
        // Offset past the end of the real file.
        try {
            loadWithFake("past.sh",
                         head + "echo '{\"t\":\"dataset\",\"path\":\"/w\",\"shape\":[4],\"type\":\"f32\","
                                "\"storage\":\"direct\",\"offset\":21930,\"bytes\":16}'\n"
                                "echo '{\"t\":\"end\",\"objects\":1}'");
            QFAIL("accepted data past the end of the file");
        } catch (const FormatError& e) {
            QCOMPARE(e.code(), ErrorCode::Truncated);
            QCOMPARE(e.offset(), std::optional<uint64_t>(21930));
            QVERIFY(contains(e.field(), "/w"));
        }
        // Byte count that does not match shape x dtype.
        QCOMPARE(expectError([&] {
                     loadWithFake("size.sh",
                                  head + "echo '{\"t\":\"dataset\",\"path\":\"/w\",\"shape\":[4],\"type\":"
                                         "\"f32\",\"storage\":\"direct\",\"offset\":0,\"bytes\":12}'\n"
                                         "echo '{\"t\":\"end\"}'");
                 }).code(),
                 ErrorCode::BadValue);
        // Shape product overflow.
        QCOMPARE(expectError([&] {
                     loadWithFake("ovf.sh",
                                  head + "echo '{\"t\":\"dataset\",\"path\":\"/w\",\"shape\":[4294967296,"
                                         "4294967296],\"type\":\"f32\",\"storage\":\"direct\",\"offset\":0,"
                                         "\"bytes\":16}'\n"
                                         "echo '{\"t\":\"end\"}'");
                 }).code(),
                 ErrorCode::Overflow);
        // Copied data without a copy file having been written.
        QCOMPARE(expectError([&] {
                     loadWithFake("copy.sh",
                                  head + "echo '{\"t\":\"dataset\",\"path\":\"/w\",\"shape\":[4],\"type\":"
                                         "\"f32\",\"storage\":\"copy\",\"offset\":0,\"bytes\":16}'\n"
                                         "echo '{\"t\":\"end\"}'");
                 }).code(),
                 ErrorCode::Truncated);
    }

    void probeRunsWithLimits()
    {
#if defined(__SANITIZE_ADDRESS__)
        QSKIP("the address-space limit is not applied in sanitizer builds");
#endif
        Hdf5Options o;
        o.memoryLimitBytes = 1ull << 30;
        o.probe =
            fakeProbe("limits.sh", "echo '{\"t\":\"probe\",\"v\":1}'\n"
                                   "echo \"{\\\"t\\\":\\\"error\\\",\\\"code\\\":\\\"open_failed\\\","
                                   "\\\"message\\\":\\\"as=$(ulimit -v) core=$(ulimit -c)\\\"}\"; exit 1");
        const Error e = expectError([&] { loadHdf5(kDir + "keras_model.h5", nullptr, o); });
        QVERIFY2(contains(e.what(), "as=1048576 core=0"), e.what());
    }

    void probeOutputIsCapped()
    {
        h5::ProbeOptions o;
        o.executable = fakeProbe("flood.sh", "exec yes '{\"t\":\"warning\",\"message\":\"flood\"}'");
        o.maxOutputBytes = 1 << 20;
        const auto run = h5::runProbe(kDir + "keras_model.h5", o, nullptr);
        QCOMPARE(run.status, h5::ProbeRun::Status::OutputTooLarge);
        QVERIFY(run.output.size() <= o.maxOutputBytes);
    }

    void probeProgressIsForwarded()
    {
        std::vector<std::pair<double, std::string>> seen;
        std::mutex mutex;
        JobControl job([&](double f, const std::string& stage) {
            std::lock_guard lock(mutex);
            seen.emplace_back(f, stage);
        });
        h5::ProbeOptions o;
        o.executable = fakeProbe("progress.sh", "echo 'progress 0.25 decoding compressed data' >&2\n"
                                                "echo 'progress 7 bogus' >&2\necho 'libhdf5 says hi' >&2");
        const auto run = h5::runProbe(kDir + "keras_model.h5", o, &job);
        QCOMPARE(run.status, h5::ProbeRun::Status::Exited);
        QCOMPARE(seen.size(), size_t(1)); // the out-of-range fraction is dropped
        QCOMPARE(seen[0].first, 0.25);
        QCOMPARE(seen[0].second, std::string("decoding compressed data"));
        QVERIFY(contains(run.errorTail, "libhdf5 says hi"));
    }

    // Output is not progress: a helper stuck in a loop that prints (anything on stderr, or the same
    // progress line again) is stopped by the inactivity limit, while one whose fraction keeps rising or
    // which keeps writing records runs on.
    void probeChatterIsNotProgress()
    {
        h5::ProbeOptions o;
        o.inactivityTimeoutMs = 600;
        o.totalTimeoutMs = 60000;
        for (const char* body : {"while :; do echo 'libhdf5 says hi' >&2; sleep 0.05; done",
                                 "while :; do echo 'progress 0.5 decoding' >&2; sleep 0.05; done"}) {
            o.executable = fakeProbe("chatter.sh", body);
            QElapsedTimer t;
            t.start();
            const auto run = h5::runProbe(kDir + "keras_model.h5", o, nullptr);
            QCOMPARE(run.status, h5::ProbeRun::Status::TimedOut);
            QVERIFY2(t.elapsed() < 20000, body); // the inactivity limit, not the total one
        }
        // Rising progress and new records, each 0.3 s apart over 2.4 s, are progress: no time-out.
        o.executable = fakeProbe("slow-progress.sh",
                                 "for f in 0.1 0.2 0.3 0.4; do echo \"progress $f decoding\" >&2; sleep 0.3; done\n"
                                 "for i in 1 2 3 4; do echo '{\"t\":\"warning\",\"message\":\"w\"}'; "
                                 "sleep 0.3; done");
        const auto run = h5::runProbe(kDir + "keras_model.h5", o, nullptr);
        QCOMPARE(run.status, h5::ProbeRun::Status::Exited);
        QCOMPARE(run.output.size(), size_t(4 * 30));
    }

    // The helper started on its own (not by Quantscope) limits itself: no core dumps, 2 GiB of address
    // space, 30 CPU-minutes, a 30-minute alarm, and its copy file capped at the limit it was given.
    void probeLimitsItself()
    {
        QProcess p;
        p.start(QString::fromStdString(h5::findProbeExecutable()),
                {QStringLiteral("--limits"), QStringLiteral("--copy-to"), m_tmp.filePath(QStringLiteral("c.bin")),
                 QStringLiteral("--copy-limit"), QStringLiteral("1000")});
        QVERIFY(p.waitForFinished(10000));
        QCOMPARE(p.exitCode(), 0);
        const QJsonObject o = QJsonDocument::fromJson(p.readAllStandardOutput()).object();
        QCOMPARE(o.value(QStringLiteral("t")).toString(), QStringLiteral("limits"));
        QCOMPARE(o.value(QStringLiteral("core")).toDouble(), 0.0);
        QCOMPARE(o.value(QStringLiteral("cpu_seconds")).toDouble(), 1800.0);
        QCOMPARE(o.value(QStringLiteral("alarm_seconds")).toDouble(), 1800.0);
        QCOMPARE(o.value(QStringLiteral("file_size")).toDouble(), 1000.0 + (1 << 20));
#if defined(__SANITIZE_ADDRESS__)
        QVERIFY(o.value(QStringLiteral("address_space")).isNull()); // ASan reserves terabytes of it
#else
        QCOMPARE(o.value(QStringLiteral("address_space")).toDouble(), double(2ull << 30));
#endif
    }

    void missingProbeIsAnIoError()
    {
        Hdf5Options o;
        o.probe = m_tmp.filePath(QStringLiteral("no-such-probe")).toStdString();
        const Error e = expectError([&] { loadHdf5(kDir + "keras_model.h5", nullptr, o); });
        QCOMPARE(e.code(), ErrorCode::Io);
        QVERIFY2(contains(e.what(), "no-such-probe"), e.what());
    }

    void findsTheProbe()
    {
        const std::string found = h5::findProbeExecutable();
        QVERIFY(QFileInfo(QString::fromStdString(found)).isExecutable());
        qputenv("QUANTSCOPE_H5PROBE", "/nonexistent/quantscope-h5probe");
        QCOMPARE(h5::findProbeExecutable(), found); // falls back past a wrong override
        const std::string fake = fakeProbe("override.sh", "exit 0");
        qputenv("QUANTSCOPE_H5PROBE", QByteArray::fromStdString(fake));
        QCOMPARE(h5::findProbeExecutable(), fake);
        qunsetenv("QUANTSCOPE_H5PROBE");
    }

    void protocolParser()
    {
        size_t bad = 0;
        auto out = h5::parseProbeOutput("{\"t\":\"probe\",\"v\":1,\"lib\":\"1.10.8\"}\n"
                                        "not json\n"
                                        "{\"t\":\"dataset\",\"path\":\"/a\",\"shape\":[-1],\"type\":\"f32\","
                                        "\"storage\":\"direct\",\"offset\":0,\"bytes\":4}\n"
                                        "{\"t\":\"dataset\",\"path\":\"/b\",\"shape\":[2,3],\"type\":\"i8\","
                                        "\"storage\":\"direct\",\"offset\":10,\"bytes\":6}\n"
                                        "{\"t\":\"dataset\",\"path\":\"/c\",\"shape\":[1.5],\"type\":\"i8\","
                                        "\"storage\":\"direct\",\"offset\":10,\"bytes\":6}\n"
                                        "{\"t\":\"attr\",\"obj\":\"/\",\"name\":\"n\",\"kind\":\"str\","
                                        "\"values\":[\"x\",\"y\"]}\n"
                                        "{\"t\":\"end\",\"objects\":3}\n"
                                        "{\"t\":\"dataset\",\"path\":\"/late\"}\n"
                                        "{\"t\":\"warning\",\"message\":\"unterminated",
                                        &bad);
        QCOMPARE(out.version, 1);
        QCOMPARE(out.library, std::string("1.10.8"));
        QVERIFY(out.complete);
        QCOMPARE(out.datasets.size(), size_t(1));
        QCOMPARE(out.datasets[0].path, std::string("/b"));
        QCOMPARE(out.datasets[0].shape, (std::vector<uint64_t>{2, 3}));
        QCOMPARE(out.datasets[0].offset, uint64_t(10));
        QCOMPARE(out.attributes.at(0).strings, (std::vector<std::string>{"x", "y"}));
        QCOMPARE(bad, size_t(5)); // not json, -1, 1.5, after end, unterminated
        QVERIFY(out.warnings.empty());
    }
};

QTEST_APPLESS_MAIN(TestHdf5)
#include "tst_hdf5.moc"
