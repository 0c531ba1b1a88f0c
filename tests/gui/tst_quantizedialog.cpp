// The Quantize dialog offscreen, on the real main window: which targets it offers for a GGUF and a
// safetensors model (and why not the others), a run of the bundled sample through the window's job runner
// (the file's size equals the summary's bytes, one table row per tensor with its SQNR, "Open result"), and
// cancels (mid-run, and from the job area) that leave no file behind.
#include "app/gui/mainwindow.h"
#include "app/gui/quantizedialog.h"
#include "core/infer/evaluate.h"
#include "core/gguf_builder.h"
#include "core/model/model.h"
#include "core/util/atomicfile.h"
#include "widgets/formatting.h"
#include "widgets/jobarea.h"
#include "widgets/jobrunner.h"
#include "widgets/plandocument.h"
#include "widgets/quantizeresultmodel.h"
#include "testtime.h"

#include <QAction>
#include <QLabel>
#include <QLineEdit>
#include <QDesktopServices>
#include <QDir>
#include <QPushButton>
#include <QRadioButton>
#include <QSettings>
#include <QSignalSpy>
#include <QTableView>
#include <QTemporaryDir>
#include <QToolButton>
#include <QtTest>
#include <atomic>
#include <cmath>

using namespace qs;

namespace {

const QString kGguf = QStringLiteral(QS_SAMPLE_DIR "/stories260K/stories260K.gguf");
const QString kSafetensors = QStringLiteral(QS_SAMPLE_DIR "/stories260K/hf-f32");

QStringList filesIn(const QString& dir)
{
    return QDir(dir).entryList(QDir::Files | QDir::Dirs | QDir::Hidden | QDir::NoDotAndDotDot);
}

// Runs the dialog into `out` and waits for the end: the run's status (NotStarted when it did not start or
// did not end within a minute).
JobStatus runToEnd(QuantizeDialog* dialog, const QString& out)
{
    dialog->setOutputPath(out);
    QSignalSpy finished(dialog, &QuantizeDialog::runFinished);
    if (!dialog->run() || (finished.isEmpty() && !finished.wait(qs::test::deadlineMs(60000))))
        return JobStatus::NotStarted;
    return finished.front().front().value<JobStatus>();
}

// Receives the URLs QDesktopServices is asked to open.
class UrlCatcher : public QObject {
    Q_OBJECT
public:
    QList<QUrl> urls;
public slots:
    void open(const QUrl& url) { urls << url; }
};

} // namespace

class TestQuantizeDialog : public QObject {
    Q_OBJECT

private slots:
    void initTestCase();
    void targetsForGgufModel();
    void targetsForSafetensorsModel();
    void requantizeNeedsConsent();
    void awqTierCalibrates();
    void gptqTierWritesGguf();
    void splitWritesShards();
    void runWritesWhatTheSummarySays();
    void failureIsShownInTheDialog();
    void cancelMidRunLeavesNothing();
    void cancelFromJobAreaLeavesNothing();

private:
    // A window with `path` opened (no automatic analysis) and its Quantize dialog.
    void open(MainWindow& window, const QString& path);

    QTemporaryDir m_dir;
};

void TestQuantizeDialog::initTestCase()
{
    QVERIFY(m_dir.isValid());
    qputenv("QUANTSCOPE_CACHE_DIR", m_dir.filePath(QStringLiteral("cache")).toLocal8Bit());
    qputenv("XDG_DATA_HOME", m_dir.filePath(QStringLiteral("data")).toLocal8Bit());
    QSettings::setDefaultFormat(QSettings::IniFormat);
    QSettings::setPath(QSettings::IniFormat, QSettings::UserScope, m_dir.path());
    QCoreApplication::setOrganizationName(QStringLiteral("QuantscopeTest"));
    QCoreApplication::setApplicationName(QStringLiteral("tst_quantizedialog"));
    QSettings().setValue(QStringLiteral("analysis/automatic"), false);
}

void TestQuantizeDialog::open(MainWindow& window, const QString& path)
{
    window.setRestorePrompt([](const QString&, std::function<void(bool)>) {});
    window.show();
    QSignalSpy loaded(&window, &MainWindow::modelLoaded);
    window.openPath(path);
    QTRY_COMPARE_WITH_TIMEOUT(loaded.count(), 1, qs::test::deadlineMs(30000));
}

void TestQuantizeDialog::targetsForGgufModel()
{
    MainWindow window;
    open(window, kGguf);
    // File › Quantize… and the Plan tab's Quantize… open the window's one dialog.
    QVERIFY(!window.findChild<QuantizeDialog*>());
    QAction* menuAction = nullptr;
    QAction* planAction = nullptr;
    for (QAction* a : window.findChildren<QAction*>()) {
        if (a->text() == QStringLiteral("&Quantize…"))
            menuAction = a;
        else if (a->text() == QStringLiteral("Quantize…"))
            planAction = a;
    }
    QVERIFY(menuAction && planAction);
    menuAction->trigger();
    QuantizeDialog* dialog = window.findChild<QuantizeDialog*>();
    QVERIFY(dialog && dialog->isVisible() && !dialog->isModal());
    dialog->hide();
    planAction->trigger();
    QVERIFY(dialog->isVisible());
    QCOMPARE(window.findChildren<QuantizeDialog*>().size(), 1);
    QCOMPARE(window.quantize(), dialog);
    QVERIFY(dialog->isTargetEnabled(QuantizeTarget::Gguf));
    QVERIFY(dialog->targetReason(QuantizeTarget::Gguf).isEmpty());
    QCOMPARE(dialog->target(), QuantizeTarget::Gguf);
    for (auto t : {QuantizeTarget::CompressedTensors, QuantizeTarget::Gptq, QuantizeTarget::FakeQuant}) {
        QVERIFY(!dialog->isTargetEnabled(t));
        QVERIFY2(dialog->targetReason(t).contains(QStringLiteral("safetensors")),
                 qPrintable(dialog->targetReason(t)));
        auto* button = dialog->findChild<QRadioButton*>(QStringLiteral("target:") + QLatin1String(quantizeTargetName(t)));
        QVERIFY(button && !button->isEnabled());
        QCOMPARE(button->toolTip().split(QLatin1Char('\n')).front(),
                 dialog->targetReason(t).section(QStringLiteral(" (and "), 0, 0));
        QVERIFY(!dialog->setTarget(t));
    }
    // The default output: next to the model, named after it and the plan's preset.
    QCOMPARE(QFileInfo(dialog->outputPath()).fileName(), QStringLiteral("stories260K-Q4_K_M.gguf"));
}

void TestQuantizeDialog::targetsForSafetensorsModel()
{
    MainWindow window;
    open(window, kSafetensors);
    QuantizeDialog* dialog = window.quantize();
    // The default Q4_K_M mix: ggml formats, which only fake-quant can apply to a safetensors model.
    QVERIFY(!dialog->isTargetEnabled(QuantizeTarget::Gguf));
    QVERIFY2(dialog->targetReason(QuantizeTarget::Gguf).contains(QStringLiteral("GGUF output needs a GGUF input")),
             qPrintable(dialog->targetReason(QuantizeTarget::Gguf)));
    QVERIFY(!dialog->isTargetEnabled(QuantizeTarget::CompressedTensors));
    QVERIFY(!dialog->targetReason(QuantizeTarget::CompressedTensors).isEmpty());
    QVERIFY(!dialog->isTargetEnabled(QuantizeTarget::Gptq));
    QVERIFY(dialog->isTargetEnabled(QuantizeTarget::FakeQuant));
    QCOMPARE(dialog->target(), QuantizeTarget::FakeQuant);
    QCOMPARE(QFileInfo(dialog->outputPath()).fileName(), QStringLiteral("hf-f32-fake-quant"));

    // An INT8 per-channel plan of the layers' weights: vLLM's and GPTQ's layouts can store it, and the dialog
    // follows the plan edit at once.
    QStringList layers;
    for (const auto& t : window.model()->tensors())
        if (t.shape.size() == 2 && t.name.find("layers.") != std::string::npos)
            layers << QString::fromStdString(t.name);
    Plan plan;
    for (const QString& name : layers)
        plan.assign(name.toStdString(), "INT8-ch-sym");
    QVERIFY(window.planDocument()->setPlan(plan, QStringLiteral("INT8")));
    QVERIFY2(dialog->isTargetEnabled(QuantizeTarget::CompressedTensors),
             qPrintable(dialog->targetReason(QuantizeTarget::CompressedTensors)));
    QVERIFY(dialog->isTargetEnabled(QuantizeTarget::Gptq));
    QVERIFY(dialog->isTargetEnabled(QuantizeTarget::FakeQuant));
    QVERIFY(!dialog->isTargetEnabled(QuantizeTarget::Gguf));
    QVERIFY(dialog->setTarget(QuantizeTarget::CompressedTensors));
    QCOMPARE(QFileInfo(dialog->outputPath()).fileName(), QStringLiteral("hf-f32-compressed-tensors"));

    // A compressed-tensors checkpoint through the dialog: the prediction holds for this target too.
    const QString out = m_dir.filePath(QStringLiteral("ct"));
    QCOMPARE(runToEnd(dialog, out), JobStatus::Succeeded);
    QCOMPARE(dialog->result()->weightBytesWritten, dialog->result()->predictedWeightBytes);
    QVERIFY(dialog->messageText().contains(QStringLiteral("exactly as predicted")));
    QCOMPARE(dialog->resultPath(), out);
    QVERIFY(QFileInfo(out + QStringLiteral("/model.safetensors")).isFile());
    // "Open result" reopens the checkpoint: each planned weight shows the scheme the plan assigned.
    QSignalSpy loaded(&window, &MainWindow::modelLoaded);
    dialog->findChild<QPushButton*>(QStringLiteral("openResult"))->click();
    QTRY_COMPARE_WITH_TIMEOUT(loaded.count(), 1, qs::test::deadlineMs(30000));
    int packed = 0;
    for (const QString& name : layers) {
        const TensorInfo* t = window.model()->find(name.toStdString());
        QVERIFY2(t && t->packed, qPrintable(name));
        QCOMPARE(t->packed->scheme, std::string("INT8-ch-sym"));
        ++packed;
    }
    QCOMPARE(packed, 35);
}

void TestQuantizeDialog::requantizeNeedsConsent()
{
    // An already-quantized GGUF (Q8_0): the Q4_K_M plan re-quantizes it, which the user must allow.
    MainWindow window;
    open(window, QStringLiteral(QS_TEST_DATA "/code-3m/quantscope-code-3m-Q8_0.gguf"));
    QuantizeDialog* dialog = window.quantize();
    QVERIFY(!dialog->isTargetEnabled(QuantizeTarget::Gguf));
    QVERIFY2(dialog->targetReason(QuantizeTarget::Gguf).contains(QStringLiteral("is already quantized (Q8_0)")),
             qPrintable(dialog->targetReason(QuantizeTarget::Gguf)));
    QVERIFY(dialog->targetReason(QuantizeTarget::Gguf).contains(QStringLiteral("Re-quantize")));
    dialog->setAllowRequantize(true);
    QVERIFY2(dialog->isTargetEnabled(QuantizeTarget::Gguf), qPrintable(dialog->targetReason(QuantizeTarget::Gguf)));
    const QString out = m_dir.filePath(QStringLiteral("requantized.gguf"));
    QCOMPARE(runToEnd(dialog, out), JobStatus::Succeeded);
    QCOMPARE(uint64_t(QFileInfo(out).size()), dialog->result()->bytesWritten);
    QVERIFY(!dialog->result()->warnings.empty()); // each re-quantized tensor is named
    QVERIFY(dialog->messageText().contains(QStringLiteral("Warning: ")));
}

// A tier quantized with AWQ (the tier menu's Quantization Method): the dialog names it, asks for a calibration
// text, and the run calibrates before writing (the job's method notes say so).
void TestQuantizeDialog::awqTierCalibrates()
{
    MainWindow window;
    open(window, QStringLiteral(QS_TEST_DATA "/code-3m/quantscope-code-3m-Q8_0.gguf"));
    QVERIFY(window.planDocument()->setTierMethod(QStringLiteral("Q4_K"), QuantMethod::Awq));
    QuantizeDialog* dialog = window.quantize();
    dialog->setAllowRequantize(true);
    auto* methods = dialog->findChild<QLabel*>(QStringLiteral("methods"));
    QVERIFY2(methods->text().startsWith(QStringLiteral("AWQ on Q4_K (")), qPrintable(methods->text()));
    auto* calibration = dialog->findChild<QLineEdit*>(QStringLiteral("calibration"));
    QVERIFY(calibration->isEnabled());
    const QString out = m_dir.filePath(QStringLiteral("awq.gguf"));
    dialog->setOutputPath(out);
    QVERIFY(!dialog->run()); // no calibration text yet
    QVERIFY(dialog->messageText().contains(QStringLiteral("calibration text")));
    dialog->setCalibrationFile(QStringLiteral(QS_TEST_DATA "/eval/python-textwrap.txt"));
    QCOMPARE(runToEnd(dialog, out), JobStatus::Succeeded);
    const QuantizeResult* r = dialog->result();
    QVERIFY(r && !r->methodNotes.empty());
    QVERIFY2(r->methodNotes.front().rfind("AWQ calibration", 0) == 0, r->methodNotes.front().c_str());
    QCOMPARE(uint64_t(QFileInfo(out).size()), r->bytesWritten);
    // Back to round to nearest: the calibration field is off again.
    QVERIFY(window.planDocument()->setTierMethod(QStringLiteral("Q4_K"), QuantMethod::Rtn));
    dialog = window.quantize();
    QVERIFY(!calibration->isEnabled());
}

// A Q4_K tier quantized with GPTQ into GGUF (no dialog change: the job runs the calibration pass and writes
// GPTQ's ggml blocks, core/quant/gptq_ggml.h; their values are checked in tst_gptq_ggml).
void TestQuantizeDialog::gptqTierWritesGguf()
{
    MainWindow window;
    open(window, QStringLiteral(QS_TEST_DATA "/code-3m/quantscope-code-3m-Q8_0.gguf"));
    QVERIFY(window.planDocument()->setTierMethod(QStringLiteral("Q4_K"), QuantMethod::Gptq));
    QuantizeDialog* dialog = window.quantize();
    dialog->setAllowRequantize(true);
    auto* methods = dialog->findChild<QLabel*>(QStringLiteral("methods"));
    QVERIFY2(methods->text().startsWith(QStringLiteral("GPTQ on Q4_K (")), qPrintable(methods->text()));
    QVERIFY2(dialog->isTargetEnabled(QuantizeTarget::Gguf), qPrintable(dialog->targetReason(QuantizeTarget::Gguf)));
    const QString out = m_dir.filePath(QStringLiteral("gptq.gguf"));
    dialog->setOutputPath(out);
    dialog->setCalibrationFile(QStringLiteral(QS_TEST_DATA "/eval/python-textwrap.txt"));
    QCOMPARE(runToEnd(dialog, out), JobStatus::Succeeded);
    const QuantizeResult* r = dialog->result();
    QVERIFY(r);
    bool calibrated = false;
    for (const auto& n : r->methodNotes)
        calibrated |= n.rfind("GPTQ calibration", 0) == 0 && n.find(" 0 tensors") == std::string::npos;
    QVERIFY(calibrated);
    QCOMPARE(uint64_t(QFileInfo(out).size()), r->bytesWritten);

    const uint64_t textBytes = r->bytesWritten;

    // An activation statistics file with Hessians in the calibration field: GPTQ from stored Hessians.
    CalibrateParams cal;
    cal.model = window.model();
    cal.textFile = QS_TEST_DATA "/eval/python-textwrap.txt";
    cal.ctx = 128;
    cal.hessians = true;
    cal.statsOut = m_dir.filePath(QStringLiteral("code3m.h5")).toStdString();
    calibrate(cal);
    const QString stored = m_dir.filePath(QStringLiteral("gptq-stored.gguf"));
    dialog->setOutputPath(stored);
    dialog->setCalibrationFile(QString::fromStdString(cal.statsOut.string()));
    QCOMPARE(runToEnd(dialog, stored), JobStatus::Succeeded);
    QVERIFY(dialog->result());
    QCOMPARE(uint64_t(QFileInfo(stored).size()), dialog->result()->bytesWritten);
    QCOMPARE(dialog->result()->bytesWritten, textBytes); // same types, same layout
    bool fromStored = false;
    for (const auto& n : dialog->result()->methodNotes)
        fromStored |= n.rfind("GPTQ calibration", 0) == 0 && n.find(" 0 tensors") == std::string::npos;
    QVERIFY(fromStored);
    QFile a(stored), b(out);
    QVERIFY(a.open(QIODevice::ReadOnly) && b.open(QIODevice::ReadOnly));
    QVERIFY(a.readAll() != b.readAll()); // other Hessians, other blocks
}

// Split (GGUF): shards named as llama.cpp names them, together as large as the summary says.
void TestQuantizeDialog::splitWritesShards()
{
    MainWindow window;
    open(window, kGguf);
    QuantizeDialog* dialog = window.quantize();
    dialog->setSplitGiB(0.0001); // ~107 KB of tensor data per shard: the sample's ~290 KB needs three
    const QString out = m_dir.filePath(QStringLiteral("split/sample.gguf"));
    QDir().mkpath(QFileInfo(out).absolutePath());
    QCOMPARE(runToEnd(dialog, out), JobStatus::Succeeded);
    const QuantizeResult* r = dialog->result();
    QVERIFY(r->files.size() >= 3);
    QCOMPARE(QString::fromStdString(r->files.front().filename().string()), QStringLiteral("sample-00001-of-0000%1.gguf").arg(r->files.size()));
    uint64_t total = 0;
    for (const auto& f : r->files)
        total += uint64_t(QFileInfo(QString::fromStdString(f.string())).size());
    QCOMPARE(total, r->bytesWritten);
    QCOMPARE(filesIn(QFileInfo(out).absolutePath()).size(), qsizetype(r->files.size()));
}

void TestQuantizeDialog::runWritesWhatTheSummarySays()
{
    MainWindow window;
    window.jobRunner()->setPollInterval(10);
    open(window, kGguf);
    QuantizeDialog* dialog = window.quantize();
    const QString out = m_dir.filePath(QStringLiteral("sample-q.gguf"));
    dialog->setOutputPath(out);
    dialog->setThreads(2);
    QSignalSpy finished(dialog, &QuantizeDialog::runFinished);
    QSignalSpy started(window.jobRunner(), &JobRunner::jobStarted);
    QVERIFY(dialog->run());
    QCOMPARE(started.count(), 1); // through the window's runner: it shows in the job area
    QVERIFY(dialog->isRunning());
    QVERIFY(!dialog->run()); // one run at a time
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, qs::test::deadlineMs(60000));
    QCOMPARE(finished.front().front().value<JobStatus>(), JobStatus::Succeeded);
    QVERIFY(!dialog->isRunning());

    const QuantizeResult* r = dialog->result();
    QVERIFY(r);
    QCOMPARE(uint64_t(QFileInfo(out).size()), r->bytesWritten);
    QCOMPARE(r->weightBytesWritten, r->predictedWeightBytes);
    // The summary states the exact numbers.
    const QString text = dialog->messageText();
    QVERIFY2(text.contains(formatExact(r->bytesWritten) + QStringLiteral(" bytes")), qPrintable(text));
    QVERIFY2(text.contains(formatExact(r->weightBytesWritten) + QStringLiteral(" bytes")), qPrintable(text));
    QVERIFY(text.contains(QStringLiteral("exactly as predicted")));
    QVERIFY(text.contains(QStringLiteral("MB/s")));

    // One row per tensor; a tensor the plan quantized has a finite SQNR, a copied one is exact.
    QuantizeResultModel* model = dialog->resultModel();
    QAbstractItemModelTester tester(model, QAbstractItemModelTester::FailureReportingMode::QtTest);
    QCOMPARE(size_t(model->rowCount()), window.model()->tensors().size());
    int quantized = 0;
    uint64_t bytes = 0;
    for (int row = 0; row < model->rowCount(); ++row) {
        const QuantizedTensor& t = model->tensors()[size_t(row)];
        bytes += t.bytes;
        const bool planned = window.planDocument()->plan().formatOf(t.name).has_value();
        if (!planned) {
            QVERIFY(t.copied && std::isinf(t.sqnrDb));
            QCOMPARE(model->index(row, QuantizeResultModel::SqnrColumn).data().toString(), QStringLiteral("exact"));
            continue;
        }
        ++quantized;
        QVERIFY2(std::isfinite(t.sqnrDb) && t.sqnrDb > 5, t.name.c_str());
        QCOMPARE(model->index(row, QuantizeResultModel::SqnrColumn).data().toString(),
                 QString::number(t.sqnrDb, 'f', 2));
    }
    QCOMPARE(bytes, r->weightBytesWritten);
    QCOMPARE(size_t(quantized), window.planDocument()->plan().assignments().size());
    QVERIFY(quantized > 30);

    // Sorting by SQNR (ascending) through the view's proxy.
    QTableView* view = dialog->resultView();
    QVERIFY(view->isVisible());
    view->sortByColumn(QuantizeResultModel::SqnrColumn, Qt::AscendingOrder);
    double previous = -1e300;
    for (int row = 0; row < view->model()->rowCount(); ++row) {
        const double v = view->model()->index(row, QuantizeResultModel::SqnrColumn).data(QuantizeResultModel::SortRole).toDouble();
        QVERIFY(v >= previous);
        previous = v;
    }

    // "Show in folder" asks the desktop to open the output's folder.
    UrlCatcher catcher;
    QDesktopServices::setUrlHandler(QStringLiteral("file"), &catcher, "open");
    dialog->findChild<QPushButton*>(QStringLiteral("showInFolder"))->click();
    QDesktopServices::unsetUrlHandler(QStringLiteral("file"));
    QCOMPARE(catcher.urls, QList<QUrl>{QUrl::fromLocalFile(QFileInfo(out).absolutePath())});

    // "Open result" opens the output in the workbench.
    QSignalSpy loaded(&window, &MainWindow::modelLoaded);
    dialog->findChild<QPushButton*>(QStringLiteral("openResult"))->click();
    QTRY_COMPARE_WITH_TIMEOUT(loaded.count(), 1, qs::test::deadlineMs(30000));
    QCOMPARE(loaded.front().front().toString(), QFileInfo(out).absoluteFilePath());
    QCOMPARE(window.model()->tensors().size(), size_t(model->rowCount()));
}

void TestQuantizeDialog::failureIsShownInTheDialog()
{
    MainWindow window;
    open(window, kGguf);
    QuantizeDialog* dialog = window.quantize();
    // The job's validation: the folder must exist; nothing is created.
    const QString out = m_dir.filePath(QStringLiteral("no-such-folder/out.gguf"));
    QCOMPARE(runToEnd(dialog, out), JobStatus::Failed);
    QVERIFY2(dialog->messageText().contains(QStringLiteral("nothing was written")), qPrintable(dialog->messageText()));
    QVERIFY2(dialog->messageText().contains(QStringLiteral("does not exist")), qPrintable(dialog->messageText()));
    QVERIFY(!dialog->result());
    QVERIFY(!QFileInfo::exists(m_dir.filePath(QStringLiteral("no-such-folder"))));
    QVERIFY(!dialog->findChild<QTableView*>(QStringLiteral("quantizeResults"))->isVisible());

    // A full disk (a write fails with ENOSPC after 64 KiB): the message says so, no file is left.
    const QString folder = m_dir.filePath(QStringLiteral("full-disk"));
    QVERIFY(QDir().mkpath(folder));
    AtomicFile::setFailAfterBytesForTesting(64 * 1024);
    const JobStatus full = runToEnd(dialog, folder + QStringLiteral("/out.gguf"));
    AtomicFile::setFailAfterBytesForTesting(0);
    QCOMPARE(full, JobStatus::Failed);
    QVERIFY2(dialog->messageText().contains(QStringLiteral("No space left on device")), qPrintable(dialog->messageText()));
    QVERIFY(filesIn(folder).isEmpty());
    // An empty output is refused before anything starts.
    dialog->setOutputPath(QString());
    QVERIFY(!dialog->run());
    QVERIFY(dialog->messageText().contains(QStringLiteral("Choose where")));
}

void TestQuantizeDialog::cancelMidRunLeavesNothing()
{
    MainWindow window;
    open(window, kGguf);
    QuantizeDialog* dialog = window.quantize();
    const QString folder = m_dir.filePath(QStringLiteral("cancel-mid"));
    QVERIFY(QDir().mkpath(folder));
    const QString out = folder + QStringLiteral("/out.gguf");
    {
        QFile existing(out);
        QVERIFY(existing.open(QIODevice::WriteOnly));
        existing.write("an existing file");
    }
    // Cancel from inside the job once it has written its first tensor bytes (its temporary file exists).
    auto sawBytes = std::make_shared<std::atomic<bool>>(false);
    dialog->setJobHook([sawBytes](QuantizeJob& job) {
        job.control().setProgressHandler([sawBytes, &job](const JobProgress& p) {
            if (p.bytesDone > 0 && !sawBytes->exchange(true))
                job.cancel();
        });
    });
    QCOMPARE(runToEnd(dialog, out), JobStatus::Cancelled);
    QVERIFY(sawBytes->load());
    QVERIFY(dialog->messageText().startsWith(QStringLiteral("Cancelled")));
    QVERIFY(!dialog->result());
    QCOMPARE(filesIn(folder), QStringList{QStringLiteral("out.gguf")});
    QFile existing(out);
    QVERIFY(existing.open(QIODevice::ReadOnly));
    QCOMPARE(existing.readAll(), QByteArray("an existing file"));
}

void TestQuantizeDialog::cancelFromJobAreaLeavesNothing()
{
    // 4 matrices of 2048 x 4096 in F16 (64 MB): quantizing them on one thread takes far longer than a click.
    qstest::GgufBuilder b;
    b.kv("general.architecture", qstest::GgufBuilder::vStr("llama"));
    for (int i = 0; i < 4; ++i)
        b.randomF16("blk." + std::to_string(i) + ".ffn_down.weight", 4096, 2048, 11 + i);
    const QString model = m_dir.filePath(QStringLiteral("big.gguf"));
    {
        QFile f(model);
        QVERIFY(f.open(QIODevice::WriteOnly));
        const std::string bytes = b.build();
        f.write(bytes.data(), qint64(bytes.size()));
    }
    MainWindow window;
    open(window, model);
    QuantizeDialog* dialog = window.quantize();
    QVERIFY(dialog->isTargetEnabled(QuantizeTarget::Gguf));
    const QString folder = m_dir.filePath(QStringLiteral("cancel-area"));
    QVERIFY(QDir().mkpath(folder));
    dialog->setOutputPath(folder + QStringLiteral("/big-q.gguf"));
    dialog->setThreads(1);
    QSignalSpy finished(dialog, &QuantizeDialog::runFinished);
    QVERIFY(dialog->run());
    const QString title = QString::fromStdString(dialog->runHandle()->job()->title());
    QToolButton* cancel = window.jobArea()->cancelButton(title);
    QVERIFY(cancel);
    cancel->click();
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, qs::test::deadlineMs(60000));
    QCOMPARE(finished.front().front().value<JobStatus>(), JobStatus::Cancelled);
    QVERIFY(filesIn(folder).isEmpty());
    QTRY_COMPARE(window.jobArea()->jobCount(), 0);
}

QTEST_MAIN(TestQuantizeDialog)
#include "tst_quantizedialog.moc"
