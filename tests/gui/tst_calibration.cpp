// Analysis › Calibrate… offscreen on the real main window: the job runs through the window's runner, writes
// the importance file (the same values as an independent core calibration of the same text), becomes the
// session's importance (the sensitivity store and the Quantize dialog use it), and a model change clears it.
// Load Importance File refuses a file that fits no tensor of the model, naming why. The activation statistics
// join the channel view. With QS_CALIBRATION_SCREENSHOT=path it also writes the channel view's screenshot.
#include "app/gui/calibration.h"
#include "app/gui/mainwindow.h"
#include "app/gui/quantizedialog.h"
#include "core/infer/evaluate.h"
#include "core/model/model.h"
#include "core/util/error.h"
#include "gui/isolated_settings.h"
#include "widgets/channelview.h"
#include "widgets/jobrunner.h"
#include "widgets/sensitivitystore.h"
#include "testtime.h"

#include <QAction>
#include <QFileInfo>
#include <QLabel>
#include <QLineEdit>
#include <QSettings>
#include <QSignalSpy>
#include <QSpinBox>
#include <QTemporaryDir>
#include <QtTest>
#include <algorithm>

using namespace qs;

namespace {
const QString kGguf = QStringLiteral(QS_SAMPLE_DIR "/stories260K/stories260K.gguf");
const QString kText = QStringLiteral(QS_SAMPLE_DIR "/eval/stories.txt");
const QString kHf = QStringLiteral(QS_SAMPLE_DIR "/stories260K/hf-f32");
} // namespace

class TestCalibration : public QObject {
    Q_OBJECT

private slots:
    void initTestCase()
    {
        QVERIFY(m_dir.isValid());
        isolateGuiTest(m_dir, QStringLiteral("tst_calibration"));
    }

    void calibrateMakesTheSessionImportance()
    {
        MainWindow window;
        QStringList errors;
        openCollectingErrors(window, errors);
        CalibrationControl* control = window.calibration();
        QVERIFY(control && !control->importance());
        auto* action = window.findChild<QAction*>(QStringLiteral("calibrate"));
        QVERIFY(action && action->isEnabled());
        QVERIFY(!window.findChild<QAction*>(QStringLiteral("clearImportance"))->isEnabled());
        action->trigger();
        CalibrateDialog* dialog = window.findChild<CalibrateDialog*>();
        QVERIFY(dialog && dialog->isVisible());
        // The default output sits beside the model.
        QCOMPARE(dialog->outputEdit()->text(),
                 QFileInfo(kGguf).absolutePath() + QStringLiteral("/stories260K.imatrix.gguf"));
        const QString out = m_dir.filePath(QStringLiteral("stories.imatrix.gguf"));
        dialog->textEdit()->setText(kText);
        dialog->outputEdit()->setText(out);
        QCOMPARE(dialog->statsEdit()->text(),
                 QFileInfo(kGguf).absolutePath() + QStringLiteral("/stories260K.activations.h5"));
        const QString statsFile = m_dir.filePath(QStringLiteral("stories.activations.h5"));
        dialog->statsEdit()->setText(statsFile);
        dialog->contextSpin()->setValue(64);
        dialog->chunksSpin()->setValue(3);
        QSignalSpy finished(dialog, &CalibrateDialog::finished);
        QVERIFY(dialog->run());
        QVERIFY(!dialog->run()); // one run at a time
        QVERIFY(finished.wait(qs::test::deadlineMs(60000)));
        QCOMPARE(finished.front().front().value<JobStatus>(), JobStatus::Succeeded);
        QVERIFY2(dialog->statusLabel()->text().contains(QStringLiteral("35 matrices from 3 chunks of 64 tokens")),
                 qPrintable(dialog->statusLabel()->text()));
        QVERIFY(QFileInfo(out).size() > 0);

        // The session's importance: the sensitivity store measures with it, the Quantize dialog offers it.
        QVERIFY(control->importance());
        QCOMPARE(control->importanceFile(), out);
        QCOMPARE(window.findChild<SensitivityStore*>()->importance(), control->importance());
        QVERIFY(window.findChild<QAction*>(QStringLiteral("clearImportance"))->isEnabled());
        QuantizeDialog* quantize = window.quantize();
        QCOMPARE(quantize->findChild<QLineEdit*>(QStringLiteral("importance"))->text(), out);

        // The same numbers as an independent calibration of the same chunks, and as the file holds.
        CalibrateParams params;
        params.model = window.model();
        params.textFile = kText.toStdString();
        params.ctx = 64;
        params.maxChunks = 3;
        const CalibrateResult reference = calibrate(params);
        const ImportanceMatrix written = ImportanceMatrix::load(out.toStdString());
        QCOMPARE(written.entries().size(), reference.entries.size());
        for (const std::string name : {"blk.0.attn_q.weight", "blk.4.ffn_down.weight"}) {
            const ImportanceEntry* ref = nullptr;
            for (const auto& e : reference.entries)
                if (e.name == name)
                    ref = &e;
            QVERIFY(ref);
            const auto session = control->importance()->importanceFor(name, ref->columns);
            const auto file = written.importanceFor(name, ref->columns);
            QCOMPARE(session.size(), size_t(ref->columns));
            for (size_t i = 0; i < session.size(); ++i) {
                QCOMPARE(session[i], ref->values[i]);
                QVERIFY(std::abs(file[i] - ref->values[i]) <= 1e-6f * std::max(1.0f, std::abs(ref->values[i])));
            }
        }
        QVERIFY(errors.isEmpty());

        // The activation statistics: written to the file, kept by the session, shown by the channel view's
        // input view with the outliers an independent count finds (mean |x| above 3 x the median).
        QVERIFY(control->activations());
        QCOMPARE(loadActivationStats(statsFile.toStdString()).inputs.size(), size_t(20));
        auto* channels = window.findChild<ChannelView*>();
        QVERIFY(channels);
        channels->setTensorMessage(QStringLiteral("blk.0.attn_q.weight"), QStringLiteral("no weight statistics"));
        channels->setMode(ChannelView::Mode::InputActivations);
        QVERIFY(channels->hasActivationsForTensor());
        const InputActivations* ref = reference.activations.find("blk.0.attn_q.weight");
        QVERIFY(ref);
        std::vector<float> sorted = ref->meanAbs;
        std::sort(sorted.begin(), sorted.end());
        const float median = sorted[sorted.size() / 2];
        std::vector<size_t> expected;
        for (size_t c = 0; c < ref->meanAbs.size(); ++c)
            if (ref->meanAbs[c] > 3.0 * median)
                expected.push_back(c);
        QCOMPARE(channels->outliers(), expected);
        QCOMPARE(channels->order().size(), size_t(64));
        QVERIFY2(channels->summaryText().contains(QStringLiteral("input of 64 channels over 192 calibration tokens")),
                 qPrintable(channels->summaryText()));
        if (const QByteArray shot = qgetenv("QS_CALIBRATION_SCREENSHOT"); !shot.isEmpty()) {
            window.resize(1400, 860);
            window.show();
            QVERIFY(window.showView(QStringLiteral("tensors")));
            QVERIFY(window.selectTensorsMatching(QStringLiteral("blk\\.1\\.ffn_down")) > 0);
            QTest::qWait(600);
            QVERIFY(window.grab().save(QString::fromLocal8Bit(shot)));
            channels->setTensorMessage(QStringLiteral("blk.0.attn_q.weight"), QStringLiteral("no weight statistics"));
        }
        channels->setMode(ChannelView::Mode::Weights);
        QVERIFY(channels->order().empty()); // no weight statistics for it: the message shows

        // Clear, then load the file back through Load Importance.
        window.findChild<QAction*>(QStringLiteral("clearImportance"))->trigger();
        QVERIFY(!control->importance());
        QVERIFY(!control->activations());
        QVERIFY(!window.findChild<SensitivityStore*>()->importance());
        channels->setMode(ChannelView::Mode::InputActivations);
        QVERIFY(!channels->hasActivationsForTensor());
        QVERIFY(loadAndWait(control, out));
        QVERIFY(control->importance());
        QVERIFY(!control->activations()); // an importance file has mean squares only: the view shows RMS
        QVERIFY(channels->hasActivationsForTensor());
        QVERIFY2(channels->summaryText().contains(QStringLiteral("median RMS")), qPrintable(channels->summaryText()));
        // The .h5 is an importance file too, with the same values, and brings the statistics back.
        QVERIFY(loadAndWait(control, statsFile));
        QVERIFY(control->activations());
        const auto fromStats = control->importance()->importanceFor("blk.4.ffn_down.weight", 172);
        QCOMPARE(std::vector<float>(fromStats.begin(), fromStats.end()),
                 reference.activations.find("blk.4.ffn_down.weight")->meanSq);
        QCOMPARE(channels->outliers(), expected);

        // A model change clears the importance.
        open(window, kHf);
        QVERIFY(!control->importance());
        QVERIFY(!control->activations());
        QVERIFY(!window.findChild<SensitivityStore*>()->importance());
    }

    void foreignImportanceIsRefused()
    {
        MainWindow window;
        QStringList errors;
        openCollectingErrors(window, errors);
        // code-3m's tensors have other widths than the sample's: nothing fits.
        const QString foreign = m_dir.filePath(QStringLiteral("code3m.imatrix.gguf"));
        CalibrateParams params;
        params.model = openModel(QS_TEST_DATA "/code-3m/quantscope-code-3m-Q8_0.gguf");
        params.text = "def f(x):\n    return x + 1\n";
        params.ctx = 8;
        writeImportanceGguf(calibrate(params), foreign.toStdString(), "t");
        QSignalSpy started(window.jobRunner(), &JobRunner::jobStarted);
        QVERIFY(!loadAndWait(window.calibration(), foreign));
        QCOMPARE(started.count(), 1); // read as a job in the job area, not on the UI thread
        QCOMPARE(errors.size(), 1);
        QVERIFY2(errors.front().contains(QStringLiteral("fits a tensor of the open model")), qPrintable(errors.front()));
        QVERIFY(!window.calibration()->importance());
    }

private:
    // Load Importance File runs as a job: start it and wait for its outcome.
    static bool loadAndWait(CalibrationControl* control, const QString& path)
    {
        QSignalSpy loaded(control, &CalibrationControl::importanceLoaded);
        if (!control->loadImportance(path) || !loaded.wait(qs::test::deadlineMs(60000)))
            return false;
        return loaded.front().front().toBool();
    }

    // The sample opened, with every presented error collected as "text detail".
    void openCollectingErrors(MainWindow& window, QStringList& errors)
    {
        window.setErrorPresenter([&errors](const QString&, const QString& text, const QString& detail) {
            errors << text + QLatin1Char(' ') + detail;
        });
        open(window, kGguf);
    }

    void open(MainWindow& window, const QString& path)
    {
        window.setRestorePrompt([](const QString&, std::function<void(bool)>) {});
        window.show();
        QSignalSpy loaded(&window, &MainWindow::modelLoaded);
        window.openPath(path);
        QTRY_COMPARE_WITH_TIMEOUT(loaded.count(), 1, qs::test::deadlineMs(30000));
    }

    QTemporaryDir m_dir;
};

QTEST_MAIN(TestCalibration)
#include "tst_calibration.moc"
