// File › Compare With… offscreen on the real main window: the sample's GGUF against its Hugging Face folder
// (every tensor identical) and against a Q8_0 copy written by the quantize job (SQNR per tensor equal to the
// core comparison; the selected tensor's difference histogram drawn with all its values), then the Quantize
// dialog's Compare with Original.
#include "app/gui/comparedialog.h"
#include "app/gui/mainwindow.h"
#include "core/quant/compare.h"
#include "core/quant/quantize.h"
#include "gui/isolated_settings.h"
#include "gui/q8_copy.h"
#include "widgets/comparemodel.h"
#include "testtime.h"

#include <QAction>
#include <QSignalSpy>
#include <QTableView>
#include <QTemporaryDir>
#include <QtTest>
#include <qcustomplot.h>

using namespace qs;

namespace {
const QString kGguf = QStringLiteral(QS_SAMPLE_DIR "/stories260K/stories260K.gguf");
const QString kHf = QStringLiteral(QS_SAMPLE_DIR "/stories260K/hf-f32");
} // namespace

class TestCompareDialog : public QObject {
    Q_OBJECT

private slots:
    void initTestCase()
    {
        QVERIFY(m_dir.isValid());
        isolateGuiTest(m_dir, QStringLiteral("tst_comparedialog"));
    }

    void comparesWithTheOpenModel()
    {
        MainWindow window;
        window.setRestorePrompt([](const QString&, std::function<void(bool)>) {});
        window.show();
        QSignalSpy loaded(&window, &MainWindow::modelLoaded);
        window.openPath(kGguf);
        QTRY_COMPARE_WITH_TIMEOUT(loaded.count(), 1, qs::test::deadlineMs(30000));

        auto* action = window.findChild<QAction*>(QStringLiteral("compareWith"));
        QVERIFY(action);
        action->trigger();
        CompareDialog* dialog = window.findChild<CompareDialog*>();
        QVERIFY(dialog && dialog->isVisible() && !dialog->isModal());
        QVERIFY(!dialog->run()); // no candidate yet
        dialog->setCandidate(kHf);
        QSignalSpy finished(dialog, &CompareDialog::runFinished);
        QVERIFY(dialog->run());
        QVERIFY(finished.wait(qs::test::deadlineMs(30000)));
        QCOMPARE(finished.front().front().value<JobStatus>(), JobStatus::Succeeded);
        QCOMPARE(dialog->model()->rowCount(), 48);
        QVERIFY2(dialog->summaryText().contains(QStringLiteral("48 tensor(s) compared · 48 identical")),
                 qPrintable(dialog->summaryText()));

        // A Q8_0 copy: every row's SQNR is the core comparison's.
        const QString q8 = m_dir.filePath(QStringLiteral("q8.gguf"));
        QCOMPARE(writeQ8Copy(window.model(), q8), JobStatus::Succeeded);
        dialog->setCandidate(q8);
        finished.clear();
        QVERIFY(dialog->run());
        QVERIFY(finished.wait(qs::test::deadlineMs(30000)));
        CompareParams p;
        p.reference = window.model();
        p.candidatePath = q8.toStdString();
        const CompareResult reference = compareModels(p);
        QCOMPARE(dialog->model()->rowCount(), int(reference.tensors.size()));
        int quantized = 0;
        for (size_t i = 0; i < reference.tensors.size(); ++i) {
            const TensorComparison& got = dialog->model()->tensors()[i];
            QCOMPARE(got.reference, reference.tensors[i].reference);
            QCOMPARE(got.metrics.mse, reference.tensors[i].metrics.mse);
            quantized += got.candidateType == "Q8_0";
        }
        QVERIFY(quantized > 20);
        QVERIFY2(dialog->summaryText().contains(QStringLiteral("lowest SQNR")), qPrintable(dialog->summaryText()));

        // Selecting a quantized tensor draws its difference: the bars hold every value.
        int row = -1;
        for (int i = 0; i < dialog->model()->rowCount(); ++i)
            if (dialog->model()->tensors()[size_t(i)].reference == "blk.1.attn_q.weight")
                row = i;
        QVERIFY(row >= 0);
        dialog->showTensor(row);
        QCOMPARE(dialog->plot()->plottableCount(), 1);
        auto* bars = qobject_cast<QCPBars*>(dialog->plot()->plottable(0));
        QVERIFY(bars);
        double total = 0;
        for (auto it = bars->data()->constBegin(); it != bars->data()->constEnd(); ++it)
            total += it->value;
        QCOMPARE(total, 64.0 * 64.0);

        // scripts/screenshots.sh: the dialog with that tensor selected.
        if (const QString shot = qEnvironmentVariable("QS_COMPARE_SCREENSHOT"); !shot.isEmpty()) {
            dialog->table()->selectRow(row);
            QTest::qWait(300);
            QVERIFY(dialog->grab().save(shot));
        }
    }

private:
    QTemporaryDir m_dir;
};

QTEST_MAIN(TestCompareDialog)
#include "tst_comparedialog.moc"
