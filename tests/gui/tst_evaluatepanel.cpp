// The Evaluate tab of the main window on the sample model: an evaluation of the current plan runs through the
// window's job runner, the summary, plot and comparison table show exactly what the core computes for the
// same parameters, a second plan adds a row (reusing the original's distributions), and a model without a
// vocabulary cannot be evaluated. With QS_EVALUATE_SCREENSHOT=path set it also writes the tab's screenshot
// (scripts/screenshots.sh).

#include "app/gui/evaluatepanel.h"
#include "app/gui/mainwindow.h"
#include "core/infer/evaluate.h"
#include "core/plan/plan.h"
#include "core/quant/quantize.h"
#include "gui/isolated_settings.h"
#include "gui/q8_copy.h"
#include "widgets/jobarea.h"
#include "widgets/jobrunner.h"
#include "widgets/plandocument.h"
#include "testtime.h"

#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QSettings>
#include <QSignalSpy>
#include <QSpinBox>
#include <QTableWidget>
#include <QTemporaryDir>
#include <QtTest>
#include <qcustomplot.h>

using namespace qs;

class TestEvaluatePanel : public QObject {
    Q_OBJECT
    QTemporaryDir m_dir;

private slots:
    void initTestCase();
    void tableEqualsCoreResult();
    void quantizedFileRows();
    void compareMethodsRows();
};

void TestEvaluatePanel::initTestCase()
{
    QVERIFY(m_dir.isValid());
    isolateGuiTest(m_dir, QStringLiteral("tst_evaluatepanel"));
}

void TestEvaluatePanel::tableEqualsCoreResult()
{
    MainWindow window;
    window.resize(1400, 860);
    window.show();
    QSignalSpy loaded(&window, &MainWindow::modelLoaded);
    window.openPath(QStringLiteral(QS_SAMPLE_DIR "/stories260K/stories260K.gguf"));
    QTRY_COMPARE_WITH_TIMEOUT(loaded.count(), 1, qs::test::deadlineMs(10000));
    QVERIFY(window.showView(QStringLiteral("evaluate")));
    auto* panel = window.findChild<EvaluatePanel*>();
    QVERIFY(panel);
    QCOMPARE(QFileInfo(panel->textEdit()->text()).fileName(), QStringLiteral("stories.txt"));
    QCOMPARE(panel->contextSpin()->maximum(), 2048); // stories260K's context length
    QCOMPARE(panel->contextSpin()->value(), 512);   // the default: llama-perplexity's usual 512
    panel->contextSpin()->setValue(64);
    QVERIFY(window.planDocument()->applyPreset(QStringLiteral("all-INT4-ch-asym")));

    QSignalSpy done(panel, &EvaluatePanel::evaluated);
    QSignalSpy started(window.jobRunner(), &JobRunner::jobStarted);
    panel->evaluateButton()->click();
    QCOMPARE(started.count(), 1); // through the window's runner: the job area shows it
    QVERIFY(panel->isRunning());
    QTRY_COMPARE_WITH_TIMEOUT(done.count(), 1, qs::test::deadlineMs(120000));
    QCOMPARE(done.at(0).at(0).value<JobStatus>(), JobStatus::Succeeded);

    // The same evaluation by the core directly.
    EvalParams params = panel->lastParams();
    QVERIFY(params.plan.has_value());
    QCOMPARE(*params.plan, window.planDocument()->plan());
    params.baseline.reset();
    const EvalResult core = evaluate(params);
    QVERIFY(core.kldMean > 0);
    QCOMPARE(panel->lastResult().kldMean, core.kldMean);
    QTableWidget* table = panel->comparisonTable();
    QCOMPARE(table->rowCount(), 2); // the original, the plan
    auto value = [table](int row, int col) { return table->item(row, col)->data(Qt::UserRole).toDouble(); };
    QCOMPARE(value(0, 3), core.perplexity);
    QCOMPARE(value(0, 5), 0.0);
    QCOMPARE(value(0, 6), 100.0);
    QCOMPARE(table->item(1, 0)->text(), QStringLiteral("all-INT4-ch-asym"));
    QCOMPARE(value(1, 3), core.perplexityQuantized);
    QCOMPARE(value(1, 5), core.kldMean);
    QCOMPARE(value(1, 6), 100.0 * core.sameTop);
    QCOMPARE(table->item(1, 4)->text(), QStringLiteral("—")); // no ΔKL measured: nothing predicted
    QVERIFY(value(1, 1) > 4.0 && value(1, 1) < 8.0); // 4-bit matrices, F32 norms and scales
    QVERIFY(value(1, 2) < value(0, 2));              // smaller than the F32 original
    QCOMPARE(table->item(1, 3)->text(), QString::number(core.perplexityQuantized, 'f', 4));
    // One bar per chunk with the chunk's mean KL.
    auto* bars = qobject_cast<QCPBars*>(panel->chunkPlot()->plottable(0));
    QVERIFY(bars);
    QCOMPARE(bars->data()->size(), int(core.perChunk.size()));
    QCOMPARE(bars->data()->at(1)->value, core.perChunk[1].kldMean);

    // A second plan: one more row, the original's distributions reused.
    QVERIFY(window.planDocument()->applyPreset(QStringLiteral("all-INT8-ch-sym")));
    panel->evaluateButton()->click();
    QTRY_COMPARE_WITH_TIMEOUT(done.count(), 2, qs::test::deadlineMs(120000));
    QCOMPARE(done.at(1).at(0).value<JobStatus>(), JobStatus::Succeeded);
    QVERIFY(panel->lastResult().baselineReused);
    QCOMPARE(table->rowCount(), 3);
    QCOMPARE(table->item(2, 0)->text(), QStringLiteral("all-INT8-ch-sym"));
    QVERIFY(value(2, 5) < value(1, 5)); // 8 bits diverge less than 4
    QVERIFY(panel->statusLabel()->text().contains(QStringLiteral("reused")));

    if (const QByteArray path = qgetenv("QS_EVALUATE_SCREENSHOT"); !path.isEmpty()) {
        QVERIFY(window.planDocument()->applyPreset(QStringLiteral("llama.cpp-Q4_K_M")));
        panel->evaluateButton()->click();
        QTRY_COMPARE_WITH_TIMEOUT(done.count(), 3, qs::test::deadlineMs(120000));
        QVERIFY(window.grab().save(QString::fromLocal8Bit(path)));
    }

    // Another context starts a new comparison (the rows would not be comparable).
    panel->contextSpin()->setValue(128);
    panel->evaluateButton()->click();
    QTRY_VERIFY_WITH_TIMEOUT(!panel->isRunning() && done.count() >= 3, qs::test::deadlineMs(120000));
    QCOMPARE(done.last().at(0).value<JobStatus>(), JobStatus::Succeeded);
    QCOMPARE(table->rowCount(), 2);
    QVERIFY(!panel->lastResult().baselineReused);

    // llama.cpp arithmetic: a new comparison, the core's numbers with the same mode.
    const int before = int(done.count());
    panel->llamaArithmeticBox()->setChecked(true);
    panel->evaluateButton()->click();
    QTRY_COMPARE_WITH_TIMEOUT(int(done.count()), before + 1, qs::test::deadlineMs(120000));
    QCOMPARE(done.last().at(0).value<JobStatus>(), JobStatus::Succeeded);
    QVERIFY(panel->lastParams().llamaCppActivations);
    QCOMPARE(table->rowCount(), 2);
    EvalParams arith = panel->lastParams();
    arith.baseline.reset();
    QCOMPARE(panel->lastResult().kldMean, evaluate(arith).kldMean);
    panel->llamaArithmeticBox()->setChecked(false);

    // A missing text file is refused before any job starts.
    panel->textEdit()->setText(m_dir.filePath(QStringLiteral("missing.txt")));
    const int jobs = int(started.count());
    QVERIFY(!panel->evaluate());
    QCOMPARE(int(started.count()), jobs);
    QVERIFY(panel->statusLabel()->text().contains(QStringLiteral("text file")));
}

// Evaluate File…: a quantized file of the open model (here a Q8_0 GGUF the quantize job wrote) gets its own
// row, with the KL the core computes for the file against the original.
void TestEvaluatePanel::quantizedFileRows()
{
    MainWindow window;
    window.show();
    QSignalSpy loaded(&window, &MainWindow::modelLoaded);
    window.openPath(QStringLiteral(QS_SAMPLE_DIR "/stories260K/stories260K.gguf"));
    QTRY_COMPARE_WITH_TIMEOUT(loaded.count(), 1, qs::test::deadlineMs(10000));
    auto* panel = window.findChild<EvaluatePanel*>();
    panel->contextSpin()->setValue(64);
    panel->chunksSpin()->setValue(4);
    const QString q8 = m_dir.filePath(QStringLiteral("q8.gguf"));
    QCOMPARE(writeQ8Copy(window.model(), q8), JobStatus::Succeeded);

    QSignalSpy done(panel, &EvaluatePanel::evaluated);
    QVERIFY(!panel->evaluateFile(m_dir.filePath(QStringLiteral("missing.gguf"))));
    QVERIFY(panel->evaluateFile(q8));
    QTRY_COMPARE_WITH_TIMEOUT(done.count(), 1, qs::test::deadlineMs(120000));
    QCOMPARE(done.at(0).at(0).value<JobStatus>(), JobStatus::Succeeded);
    EvalParams params = panel->lastParams();
    QVERIFY(params.quantizedModel);
    params.baseline.reset();
    const EvalResult core = evaluate(params);
    QTableWidget* table = panel->comparisonTable();
    QCOMPARE(table->rowCount(), 2);
    QCOMPARE(table->item(1, 0)->text(), QStringLiteral("q8.gguf"));
    QCOMPARE(table->item(1, 5)->data(Qt::UserRole).toDouble(), core.kldMean);
    QVERIFY(core.kldMean > 0 && core.kldMean < 0.01); // 8 bits: close to the original
}

// Compare Methods: code-3m's all-Q4_0 plan quantized with RTN and AWQ into temporary GGUF files, one row each,
// the numbers those of the core comparison; GPTQ without a calibration text is named with the reason.
void TestEvaluatePanel::compareMethodsRows()
{
    MainWindow window;
    window.resize(1400, 860);
    QSignalSpy loaded(&window, &MainWindow::modelLoaded);
    window.openPath(QStringLiteral(QS_TEST_DATA "/code-3m/quantscope-code-3m-Q8_0.gguf"));
    QTRY_COMPARE_WITH_TIMEOUT(loaded.count(), 1, qs::test::deadlineMs(10000));
    auto* panel = window.findChild<EvaluatePanel*>();
    QVERIFY(panel && panel->compareMethodsButton()->isEnabled());
    const QString text = QStringLiteral(QS_TEST_DATA "/eval/python-textwrap.txt");
    panel->textEdit()->setText(text);
    panel->contextSpin()->setValue(128);
    panel->chunksSpin()->setValue(4);
    QVERIFY(window.planDocument()->applyPreset(QStringLiteral("all-Q4_0")));
    QSignalSpy done(panel, &EvaluatePanel::evaluated);

    QVERIFY(panel->compareMethods(QString(), {QuantMethod::Gptq}));
    QVERIFY(!panel->compareMethodsButton()->isEnabled());
    QTRY_COMPARE_WITH_TIMEOUT(done.count(), 1, qs::test::deadlineMs(120000));
    QCOMPARE(done.at(0).at(0).value<JobStatus>(), JobStatus::Succeeded);
    QVERIFY2(panel->statusLabel()->text().contains(QStringLiteral("GPTQ not evaluated")),
             qPrintable(panel->statusLabel()->text()));
    QTableWidget* table = panel->comparisonTable();
    QCOMPARE(table->rowCount(), 0); // nothing evaluated

    QVERIFY(panel->compareMethods(text, {QuantMethod::Rtn, QuantMethod::Awq}));
    QTRY_COMPARE_WITH_TIMEOUT(done.count(), 2, qs::test::deadlineMs(240000));
    QCOMPARE(done.at(1).at(0).value<JobStatus>(), JobStatus::Succeeded);
    const MethodComparisonResult& r = panel->lastComparison();
    QCOMPARE(r.outcomes.size(), size_t(2));
    QVERIFY(r.outcomes[0].ok() && r.outcomes[1].ok());
    QCOMPARE(table->rowCount(), 3); // the original, RTN, AWQ
    auto value = [table](int row, int col) { return table->item(row, col)->data(Qt::UserRole).toDouble(); };
    QCOMPARE(table->item(1, 0)->text(), QStringLiteral("all-Q4_0 · RTN"));
    QCOMPARE(table->item(2, 0)->text(), QStringLiteral("all-Q4_0 · AWQ"));
    QCOMPARE(value(0, 3), r.outcomes[0].eval.perplexity);
    QCOMPARE(value(1, 5), r.outcomes[0].eval.kldMean);
    QCOMPARE(value(2, 5), r.outcomes[1].eval.kldMean);
    QVERIFY(value(2, 5) < value(1, 5)); // AWQ diverges less than RTN
    QCOMPARE(value(2, 2), double(r.outcomes[1].weightBytes));
    QVERIFY(r.outcomes[1].eval.baselineReused);
    if (const QByteArray path = qgetenv("QS_METHODS_SCREENSHOT"); !path.isEmpty()) {
        window.show();
        QVERIFY(window.showView(QStringLiteral("evaluate")));
        QTest::qWait(400);
        QVERIFY(window.grab().save(QString::fromLocal8Bit(path)));
    }
}

QTEST_MAIN(TestEvaluatePanel)
#include "tst_evaluatepanel.moc"
