// Fit to Budget › GPU: the weights and the KV-cache type fitted together to a GPU from the window. The page
// computes one alternative per cache type (a background job), the chosen one selected; "Fit" applies it as
// one undo step and the footprint panel then shows that cache type and context, fitting the GPU.
#include "isolated_settings.h"

#include "app/gui/budgetdialog.h"
#include "app/gui/gpufitpanel.h"
#include "app/gui/mainwindow.h"
#include "widgets/footprintpanel.h"
#include "widgets/plandocument.h"

#include <QComboBox>
#include <QDir>
#include <QFile>
#include <QLabel>
#include <QSignalSpy>
#include <QSpinBox>
#include <QTableWidget>
#include <QTemporaryDir>
#include <QUndoStack>
#include <QtTest>

using namespace qs;

class TestGpuFitDialog : public QObject {
    Q_OBJECT

private slots:
    void initTestCase() { isolateGuiTest(m_dir, QStringLiteral("tst_gpufitdialog")); }

    void fitsWeightsAndKvCache()
    {
        // A Llama-3.1-8B-shaped config.json (128k trained context) and nothing else.
        QFile config(m_dir.filePath(QStringLiteral("config.json")));
        QVERIFY(config.open(QIODevice::WriteOnly));
        config.write(R"({"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":4096,
            "intermediate_size":14336,"num_attention_heads":32,"num_hidden_layers":32,"num_key_value_heads":8,
            "vocab_size":128256,"max_position_embeddings":131072,"tie_word_embeddings":false,
            "torch_dtype":"bfloat16"})");
        config.close();
        MainWindow window;
        window.show();
        QSignalSpy loaded(&window, &MainWindow::modelLoaded);
        window.openPath(config.fileName());
        QTRY_COMPARE_WITH_TIMEOUT(loaded.count(), 1, 10000);
        window.fitPlanToBudget();
        auto* dialog = window.findChild<BudgetDialog*>(QStringLiteral("budgetDialog"));
        QVERIFY(dialog && dialog->isVisible());
        dialog->showGpuPage(true);
        GpuFitPanel* page = dialog->gpuPage();
        auto* gpu = page->findChild<QComboBox*>(QStringLiteral("gpuFitGpu"));
        gpu->setCurrentIndex(gpu->findData(QStringLiteral("rtx-3060-12")));
        QVERIFY(gpu->currentIndex() >= 0);
        page->findChild<QSpinBox*>(QStringLiteral("gpuFitContext"))->setValue(32768);
        // The first "Fit" computes; the dialog stays open with the alternatives.
        QSignalSpy computed(page, &GpuFitPanel::computed);
        dialog->accept();
        QTRY_COMPARE_WITH_TIMEOUT(computed.count(), 1, 30000);
        QVERIFY(dialog->isVisible());
        QCOMPARE(page->table()->rowCount(), 3); // f16, q8_0, q4_0
        const JointFitResult& fit = *page->result();
        QVERIFY(fit.chosen);
        QCOMPARE(page->selected(), fit.chosen);
        QVERIFY(page->table()->item(int(*fit.chosen), 0)->text().contains(QStringLiteral("chosen")));
        const KvAlternative chosen = fit.alternatives[*fit.chosen];
        if (const QByteArray shot = qgetenv("QS_GPUFIT_SCREENSHOT"); !shot.isEmpty()) {
            QTest::qWait(300);
            QVERIFY(dialog->grab().save(QString::fromLocal8Bit(shot)));
        }
        // The second applies it.
        const int steps = window.planDocument()->undoStack()->count();
        dialog->accept();
        QTRY_COMPARE(window.planDocument()->undoStack()->count(), steps + 1);
        FootprintPanel* panel = window.footprintPanel();
        QCOMPARE(panel->currentRequest().kvType, chosen.kvType);
        QCOMPARE(panel->currentRequest().context, uint64_t(32768));
        const int row = int(panel->gpus().indexOf(QStringLiteral("rtx-3060-12")));
        QVERIFY(row >= 0);
        // The footprint panel's own estimate agrees: it fits, with the total the fit computed.
        QVERIFY(panel->fits()[size_t(row)].fits);
        QCOMPARE(panel->fits()[size_t(row)].footprint.totalBytes(), chosen.totalBytes);
    }

private:
    QTemporaryDir m_dir;
};

QTEST_MAIN(TestGpuFitDialog)
#include "tst_gpufitdialog.moc"
