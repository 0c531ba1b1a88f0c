// The Sensitivity tab of the main window on the sample model: Compute runs the matrix in the background,
// the cells equal what the core computes for the same tensor and format directly, n/a cells are the core's
// failures, and clicking a cell selects the tensor and overlays the format's grid on the histogram.

#include "app/gui/analysiscontrol.h"
#include "app/gui/evaluatepanel.h"
#include "app/gui/mainwindow.h"
#include "core/infer/klsensitivity.h"
#include "core/model/model.h"
#include "core/plan/budget.h"
#include "core/quant/format.h"
#include "core/quant/sensitivity.h"
#include "widgets/footprintpanel.h"
#include "widgets/formatchooser.h"
#include "widgets/formatting.h"
#include "widgets/histogramview.h"
#include "widgets/plandocument.h"
#include "widgets/sensitivitystore.h"
#include "widgets/sensitivityview.h"
#include "testtime.h"

#include <QAction>
#include <QComboBox>
#include <QDialog>
#include <QLabel>
#include <QPushButton>
#include <QSettings>
#include <QSignalSpy>
#include <QSpinBox>
#include <QTemporaryDir>
#include <QtTest>

using namespace qs;

class TestSensitivity : public QObject {
    Q_OBJECT

private slots:
    void initTestCase();
    void computesMatrixLikeTheCore();
    void cancelStopsAndSaysSo();
    void chosenFormatsAreTheColumns();
    void measuredKlFeedsTheFit();

private:
    QTemporaryDir m_dir;
};

void TestSensitivity::initTestCase()
{
    QVERIFY(m_dir.isValid());
    qputenv("QUANTSCOPE_CACHE_DIR", m_dir.filePath(QStringLiteral("cache")).toLocal8Bit());
    qputenv("XDG_DATA_HOME", m_dir.filePath(QStringLiteral("data")).toLocal8Bit());
    qputenv("XDG_CONFIG_HOME", m_dir.filePath(QStringLiteral("config")).toLocal8Bit());
    QSettings::setDefaultFormat(QSettings::IniFormat);
    QSettings::setPath(QSettings::IniFormat, QSettings::UserScope, m_dir.path());
    QCoreApplication::setOrganizationName(QStringLiteral("QuantscopeTest"));
    QCoreApplication::setApplicationName(QStringLiteral("tst_sensitivity"));
    QSettings().setValue(QStringLiteral("analysis/automatic"), false);
}

void TestSensitivity::computesMatrixLikeTheCore()
{
    MainWindow window;
    window.resize(1400, 1000);
    window.show();
    QSignalSpy loaded(&window, &MainWindow::modelLoaded);
    window.openPath(QStringLiteral(QS_SAMPLE_DIR "/stories260K/stories260K.gguf"));
    QTRY_COMPARE_WITH_TIMEOUT(loaded.count(), 1, qs::test::deadlineMs(10000));
    QVERIFY(window.showView(QStringLiteral("sensitivity")));
    SensitivityView* view = window.sensitivityView();
    // stories260K: 5 blocks x 7 matrices + token embedding + output head; norms are not candidates.
    QCOMPARE(view->tensors().size(), 37);
    QCOMPARE(view->tensors().front(), QStringLiteral("token_embd.weight"));
    QCOMPARE(view->formats().size(), qsizetype(defaultSensitivityFormats().size()));

    QSignalSpy finished(&window, &MainWindow::sensitivityFinished);
    view->computeButton()->click();
    QVERIFY(window.isComputingSensitivity());
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, qs::test::deadlineMs(120000));
    QCOMPARE(finished.at(0).at(0).toBool(), false);
    QCOMPARE(window.sensitivityStore()->resultCount(), size_t(37) * size_t(view->formats().size()));

    // The same cells computed by the core directly.
    const QString tensor = QStringLiteral("blk.1.attn_q.weight");
    const int row = int(view->tensors().indexOf(tensor));
    QVERIFY(row >= 0);
    SensitivityOptions options;
    options.formats = {"Q8_0", "Q4_K", "INT8-ch-sym"};
    options.tensorFilter = [](const TensorInfo& t) { return t.name == "blk.1.attn_q.weight"; };
    const std::vector<SensitivityResult> direct = computeSensitivity(*window.model(), options);
    QCOMPARE(direct.size(), size_t(3));
    for (const SensitivityResult& expected : direct) {
        const int column = int(view->formats().indexOf(QString::fromStdString(expected.format)));
        QVERIFY2(column >= 0, expected.format.c_str());
        const SensitivityResult* shown = view->result(row, column);
        QVERIFY(shown);
        QCOMPARE(shown->ok(), expected.ok());
        QCOMPARE(shown->bytes, expected.bytes);
        if (expected.ok()) {
            QCOMPARE(shown->metrics.sqnrDb, expected.metrics.sqnrDb);
            QCOMPARE(shown->metrics.relMse, expected.metrics.relMse);
            QCOMPARE(view->cellText(row, column), QString::number(expected.metrics.sqnrDb, 'f', 1));
        } else {
            QCOMPARE(view->cellText(row, column), QStringLiteral("n/a"));
        }
    }
    // Rows of 64 values: Q8_0 applies (blocks of 32), Q4_K (super-blocks of 256) does not.
    QVERIFY(direct[0].ok());
    QVERIFY(direct[0].metrics.sqnrDb > 30.0);
    QVERIFY(!direct[1].ok());

    // Clicking a cell selects the tensor everywhere and overlays that format's grid on the histogram.
    const int q8 = int(view->formats().indexOf(QStringLiteral("Q8_0")));
    QTest::mouseClick(view->heatmap(), Qt::LeftButton, {}, view->cellRect(row, q8).center());
    QCOMPARE(window.selectedTensors(), QStringList{tensor});
    auto* grid = window.histogramView()->findChild<QComboBox*>(QStringLiteral("histogramGrid"));
    QVERIFY(grid);
    QCOMPARE(grid->currentData().toString(), QStringLiteral("Q8_0"));
    QCOMPARE(view->barFormat(), QStringLiteral("Q8_0"));
    QCOMPARE(view->barValues()[size_t(row)], direct[0].metrics.sqnrDb);

    // A second run comes from the cache with the same numbers.
    view->computeButton()->click();
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 2, qs::test::deadlineMs(60000));
    const SensitivityResult* again = view->result(row, q8);
    QVERIFY(again && again->fromCache);
    QCOMPARE(again->metrics.sqnrDb, direct[0].metrics.sqnrDb);

    // The footprint panel's predicted error is now the measured total for the current plan.
    const PlanErrorSummary planned =
        planError(window.planDocument()->plan(), window.planDocument()->layout(),
                  errorTableFromSensitivity(window.sensitivityStore()->results()));
    QVERIFY(planned.measured > 0);
    const QString footprint = window.footprintPanel()->summaryText();
    QVERIFY2(footprint.contains(QStringLiteral("measured")), qPrintable(footprint));
    QVERIFY2(footprint.contains(formatStat(planned.error)), qPrintable(footprint));
    QVERIFY(!footprint.contains(QStringLiteral("no sensitivity measured")));

    // Fit to budget now predicts with the measured errors.
    QStringList errors;
    window.setErrorPresenter([&errors](const QString&, const QString& text, const QString& detail) {
        errors << text + QLatin1Char(' ') + detail;
    });
    window.fitPlanToBudget();
    QVERIFY2(errors.isEmpty(), qPrintable(errors.join(QLatin1Char('\n'))));
    auto* dialog = window.findChild<QDialog*>(QStringLiteral("budgetDialog"));
    QVERIFY(dialog);
    bool measured = false;
    for (const QLabel* label : dialog->findChildren<QLabel*>())
        measured = measured || label->text().contains(QStringLiteral("measured sensitivity matrix"));
    QVERIFY(measured);
    dialog->close();
}

void TestSensitivity::cancelStopsAndSaysSo()
{
    MainWindow window;
    window.show();
    QSignalSpy loaded(&window, &MainWindow::modelLoaded);
    window.openPath(QStringLiteral(QS_TEST_DATA "/ppocr/model.safetensors"));
    QTRY_COMPARE_WITH_TIMEOUT(loaded.count(), 1, qs::test::deadlineMs(10000));
    QSignalSpy finished(&window, &MainWindow::sensitivityFinished);
    window.computeSensitivity();
    QVERIFY(window.isComputingSensitivity());
    QCOMPARE(window.sensitivityView()->computeButton()->text(), QStringLiteral("Cancel"));
    window.sensitivityView()->computeButton()->click(); // the button cancels while running
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, qs::test::deadlineMs(60000));
    QCOMPARE(finished.at(0).at(0).toBool(), true);
    QVERIFY(!window.isComputingSensitivity());
    QCOMPARE(window.sensitivityView()->computeButton()->text(), QStringLiteral("Compute"));
    // Cancelled before any tensor finished: fewer cells than the whole matrix.
    QVERIFY(window.sensitivityStore()->resultCount() <
            size_t(window.sensitivityView()->tensors().size() * window.sensitivityView()->formats().size()));
}

// The formats chosen beside Compute are what Compute measures and what the heatmap shows, and they are
// remembered for the next window.
void TestSensitivity::chosenFormatsAreTheColumns()
{
    QStringList chosen;
    {
        MainWindow window;
        window.show();
        QSignalSpy loaded(&window, &MainWindow::modelLoaded);
        window.openPath(QStringLiteral(QS_SAMPLE_DIR "/stories260K/stories260K.gguf"));
        QTRY_COMPARE_WITH_TIMEOUT(loaded.count(), 1, qs::test::deadlineMs(10000));
        FormatChooser* chooser = window.sensitivityView()->formatChooser();
        QCOMPARE(chooser->chosenFormats(), FormatChooser::defaultFormats());
        QCOMPARE(window.sensitivityView()->formats(), FormatChooser::defaultFormats());
        chooser->setChosenFormats({QStringLiteral("Q8_0")});
        QSignalSpy changed(chooser, &FormatChooser::formatsChanged);
        QAction* nf4 = chooser->formatAction(QStringLiteral("NF4"));
        QVERIFY(nf4 && !nf4->isChecked());
        nf4->trigger(); // as a click in the menu
        QCOMPARE(changed.count(), 1);
        chosen = chooser->chosenFormats();
        QCOMPARE(chosen, QStringList({QStringLiteral("Q8_0"), QStringLiteral("NF4")}));
        QCOMPARE(window.sensitivityView()->formats(), chosen); // the columns follow at once
        // Unchecking the last one is refused: something is always measured.
        chooser->setChosenFormats({QStringLiteral("NF4")});
        nf4->trigger();
        QVERIFY(nf4->isChecked());
        chooser->setChosenFormats(chosen);

        QSignalSpy finished(&window, &MainWindow::sensitivityFinished);
        window.computeSensitivity();
        QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, qs::test::deadlineMs(60000));
        QCOMPARE(window.sensitivityView()->formats(), chosen);
        const auto results = window.sensitivityStore()->results();
        QCOMPARE(results.size(), size_t(window.sensitivityView()->tensors().size()) * 2);
        for (const SensitivityResult& r : results)
            QVERIFY(chosen.contains(QString::fromStdString(r.format)));
    }
    QCOMPARE(QSettings().value(QStringLiteral("sensitivity/formats")).toStringList(), chosen);
    MainWindow again;
    QCOMPARE(again.sensitivityView()->formatChooser()->chosenFormats(), chosen);
    QCOMPARE(again.sensitivityStore()->formats(), chosen);
    QSettings().remove(QStringLiteral("sensitivity/formats"));
}

// Analysis › Measure ΔKL Sensitivity: the matrix's cells become measured ΔKL (shown as −10·log10 ΔKL dB), equal
// to the core job's on the same text, and the error table the fit minimises is ΔKL.
void TestSensitivity::measuredKlFeedsTheFit()
{
    MainWindow window;
    window.show();
    QSignalSpy loaded(&window, &MainWindow::modelLoaded);
    window.openPath(QStringLiteral(QS_SAMPLE_DIR "/stories260K/stories260K.gguf"));
    QTRY_COMPARE_WITH_TIMEOUT(loaded.count(), 1, qs::test::deadlineMs(10000));
    window.sensitivityView()->formatChooser()->setChosenFormats({QStringLiteral("Q8_0"), QStringLiteral("Q5_0")});
    auto* control = window.findChild<AnalysisControl*>();
    QVERIFY(control && window.findChild<QAction*>(QStringLiteral("measureKl")));
    const QString text = QStringLiteral(QS_SAMPLE_DIR "/eval/stories.txt");
    QSignalSpy finished(&window, &MainWindow::sensitivityFinished);
    control->measureKl(text);
    QVERIFY(window.isComputingSensitivity());
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, qs::test::deadlineMs(120000));
    SensitivityStore* store = window.sensitivityStore();
    QCOMPARE(store->measure(), SensitivityStore::Measure::DeltaKl);
    QCOMPARE(window.sensitivityView()->metricName(), QStringLiteral("KL score"));
    QVERIFY(store->resultCount() > 37); // 37 tensors x 2 formats (cells a format cannot store included)

    KlSensitivityParams p;
    p.model = window.model();
    p.textFile = text.toStdString();
    p.options.formats = {"Q8_0", "Q5_0"};
    const KlSensitivityResult core = measureKlSensitivity(p);
    const ErrorTable expected = errorTableFromKl(core);
    const ErrorTable got = errorTableFromSensitivity(store->results());
    QCOMPARE(got.size(), expected.size());
    for (const auto& [tensor, formats] : expected)
        for (const auto& [format, dkl] : formats) {
            QVERIFY2(got.count(tensor) && got.at(tensor).count(format), tensor.c_str());
            QVERIFY(std::abs(got.at(tensor).at(format) - dkl) <= 1e-9 * std::max(1.0, std::abs(dkl)));
        }
    const SensitivityResult* cell = store->result(QStringLiteral("blk.1.attn_q.weight"), QStringLiteral("Q5_0"));
    QVERIFY(cell && cell->isDeltaKl());
    QCOMPARE(cell->metrics.sqnrDb, klScoreDb(cell->deltaKl));
    // The Evaluate tab predicts a plan's KL as the sum of its tensors' ΔKL (shown beside the measured KL).
    Plan plan;
    double sum = 0;
    for (const auto& [tensor, formats] : expected)
        if (formats.count("Q8_0")) {
            plan.assign(tensor, "Q8_0");
            sum += formats.at("Q8_0");
        }
    auto* evaluate = window.findChild<EvaluatePanel*>();
    QVERIFY(evaluate);
    const auto predicted = evaluate->predictedKl(plan);
    QVERIFY(predicted.has_value());
    QVERIFY(std::abs(*predicted - sum) <= 1e-12 * std::max(1.0, sum));
    // scripts/screenshots.sh: the ΔKL matrix, then a plan's predicted and measured KL on the Evaluate tab.
    if (const QString dir = qEnvironmentVariable("QS_KL_SCREENSHOTS"); !dir.isEmpty()) {
        window.resize(1400, 860);
        QVERIFY(window.showView(QStringLiteral("sensitivity")));
        window.selectTensorsMatching(QStringLiteral("^blk\\.1\\.attn_q"));
        QTest::qWait(400);
        QVERIFY(window.grab().save(dir + QStringLiteral("/sensitivity-kl.png")));
        plan.setIdentity(window.planDocument()->plan().identity());
        plan.setPreset("measured Q8_0");
        QVERIFY(window.planDocument()->setPlan(plan, QStringLiteral("screenshot plan")));
        QVERIFY(window.showView(QStringLiteral("evaluate")));
        evaluate->contextSpin()->setValue(64);
        QSignalSpy evaluated(evaluate, &EvaluatePanel::evaluated);
        QVERIFY(evaluate->evaluate());
        QTRY_COMPARE_WITH_TIMEOUT(evaluated.count(), 1, qs::test::deadlineMs(120000));
        QTest::qWait(400);
        QVERIFY(window.grab().save(dir + QStringLiteral("/evaluate-predicted.png")));
    }
    // The weight-error matrix again: back to SQNR cells.
    finished.clear();
    window.computeSensitivity();
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, qs::test::deadlineMs(120000));
    QCOMPARE(store->measure(), SensitivityStore::Measure::WeightError);
    QVERIFY(!evaluate->predictedKl(plan)); // weight errors predict no KL
    QCOMPARE(window.sensitivityView()->metricName(), QStringLiteral("SQNR"));
    QVERIFY(!store->result(QStringLiteral("blk.1.attn_q.weight"), QStringLiteral("Q5_0"))->isDeltaKl());
}

QTEST_MAIN(TestSensitivity)
#include "tst_sensitivity.moc"
