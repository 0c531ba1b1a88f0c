// The main window offscreen: opening the sample GGUF through openPath() (the path the command line,
// the dialog, drops and recent files all take), the error path with a corrupt file (the previous model
// stays), drag and drop, cancel, and what persists in QSettings.
#include "app/gui/mainwindow.h"
#include "app/gui/modelloader.h"
#include "app/gui/recentfiles.h"
#include "core/stats/stats.h"
#include "widgets/histogramview.h"
#include "widgets/issuesbutton.h"
#include "widgets/modelsummary.h"
#include "core/plan/planio.h"
#include "widgets/plandocument.h"
#include "widgets/tierboardmodel.h"
#include "widgets/tierboardview.h"
#include "widgets/footprintpanel.h"
#include "widgets/tradeoffview.h"
#include "widgets/tensortreemodel.h"

#include <QComboBox>
#include <QDialog>
#include <QDoubleSpinBox>
#include <QDir>
#include <QLineEdit>
#include <QMenu>
#include <QMessageBox>
#include <QMimeData>
#include <QSettings>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QTreeView>
#include <QUndoStack>
#include <QtTest>
#include <qcustomplot.h>

using namespace qs;

namespace {

QString samplePath()
{
    return QStringLiteral(QS_SAMPLE_DIR "/stories260K/stories260K.gguf");
}

int tensorRows(const QAbstractItemModel* m)
{
    int n = 0;
    for (int g = 0; g < m->rowCount(); ++g)
        n += m->rowCount(m->index(g, 0));
    return n;
}

} // namespace

class TestMainWindow : public QObject {
    Q_OBJECT

private slots:
    void initTestCase();
    void init();
    void opensSampleLikeCommandLine();
    void corruptFileShowsDialogAndKeepsModel();
    void missingFileUsesInjectedPresenter();
    void dropOpensFile();
    void cancelDropsResult();
    void persistsRecentFilesAndGeometry();
    void recentFilesTellSameNamesApart();
    void exportRefusalOffersFixes();
    void targetSelectorChecksWhatTheToolStores();
    void planUndoShortcutsAndSync();
    void autosavedPlanIsOfferedAfterCrash();
    void switchingModelsKeepsEditedPlan();
    void groupSelectionShowsMergedHistogram();
    void fitToBudgetDialog();
    void configOnlyPlansWithoutWeights();

private:
    QTemporaryDir m_dir;
    QString m_corrupt;
};

void TestMainWindow::initTestCase()
{
    QVERIFY(m_dir.isValid());
    qputenv("QUANTSCOPE_CACHE_DIR", m_dir.filePath(QStringLiteral("cache")).toLocal8Bit());
    qputenv("XDG_DATA_HOME", m_dir.filePath(QStringLiteral("data")).toLocal8Bit()); // plan autosaves
    QSettings::setDefaultFormat(QSettings::IniFormat);
    QSettings::setPath(QSettings::IniFormat, QSettings::UserScope, m_dir.path());
    QCoreApplication::setOrganizationName(QStringLiteral("QuantscopeTest"));
    QCoreApplication::setApplicationName(QStringLiteral("tst_mainwindow"));
    // A GGUF cut in the middle of its tensor infos.
    QFile in(samplePath());
    QVERIFY(in.open(QIODevice::ReadOnly));
    m_corrupt = m_dir.filePath(QStringLiteral("truncated.gguf"));
    QFile out(m_corrupt);
    QVERIFY(out.open(QIODevice::WriteOnly));
    out.write(in.read(2000));
}

void TestMainWindow::init()
{
    QSettings().clear();
}

void TestMainWindow::opensSampleLikeCommandLine()
{
    MainWindow window;
    window.show();
    QSignalSpy loaded(&window, &MainWindow::modelLoaded);
    window.openPath(samplePath());
    QTRY_COMPARE_WITH_TIMEOUT(loaded.count(), 1, 10000);
    QVERIFY(window.model());
    // stories260K: 5 blocks × 9 tensors + token embedding + output norm + output head.
    QCOMPARE(window.model()->tensors().size(), size_t(48));
    QTRY_COMPARE(tensorRows(window.tensorView()->model()), 48);
    QVERIFY(window.tensorView()->model()->rowCount() >= 1);
    QCOMPARE(window.summaryWidget()->value(QStringLiteral("Tensors")), QStringLiteral("48"));
    QCOMPARE(window.summaryWidget()->value(QStringLiteral("Layers")), QStringLiteral("5"));
    QCOMPARE(window.summaryWidget()->value(QStringLiteral("Format")), QStringLiteral("gguf"));
    QVERIFY(window.windowTitle().startsWith(QStringLiteral("stories260K.gguf")));
    QCOMPARE(window.recentFiles().value(0), QFileInfo(samplePath()).absoluteFilePath());
    QVERIFY(!window.isLoading());

    // The filter box narrows the tree.
    window.filterEdit()->setText(QStringLiteral("ffn_down"));
    QTRY_COMPARE(tensorRows(window.tensorView()->model()), 5);
    window.filterEdit()->clear();
    QTRY_COMPARE(tensorRows(window.tensorView()->model()), 48);
}

void TestMainWindow::corruptFileShowsDialogAndKeepsModel()
{
    MainWindow window;
    window.show();
    QSignalSpy loaded(&window, &MainWindow::modelLoaded);
    QSignalSpy failed(&window, &MainWindow::loadFailed);
    window.openPath(samplePath());
    QTRY_COMPARE_WITH_TIMEOUT(loaded.count(), 1, 10000);
    const auto before = window.model();

    window.openPath(m_corrupt);
    QTRY_COMPARE_WITH_TIMEOUT(failed.count(), 1, 10000);
    // The default presenter opens a non-blocking message box naming the file and the loader's error.
    QMessageBox* box = nullptr;
    QTRY_VERIFY((box = window.findChild<QMessageBox*>(QStringLiteral("loadErrorBox"))) != nullptr);
    QVERIFY(box->isVisible());
    QVERIFY(box->text().contains(QStringLiteral("truncated.gguf")));
    const QString message = failed.at(0).at(1).toString();
    QVERIFY2(message.contains(QStringLiteral("truncated.gguf")), qPrintable(message));
    QVERIFY(box->informativeText().contains(message));
    QVERIFY(box->informativeText().contains(QStringLiteral("previously opened model stays open")));
    box->accept();
    QTRY_VERIFY(!window.findChild<QMessageBox*>(QStringLiteral("loadErrorBox")));

    // Previous model still shown; the corrupt file did not enter the recent list.
    QCOMPARE(window.model(), before);
    QCOMPARE(tensorRows(window.tensorView()->model()), 48);
    QVERIFY(!window.recentFiles().contains(QFileInfo(m_corrupt).absoluteFilePath()));
    // And the window still opens models.
    window.openPath(samplePath());
    QTRY_COMPARE_WITH_TIMEOUT(loaded.count(), 2, 10000);
    QVERIFY(window.model() != before);
}

void TestMainWindow::missingFileUsesInjectedPresenter()
{
    MainWindow window;
    QStringList shown;
    window.setErrorPresenter([&](const QString& title, const QString& text, const QString& detail) {
        shown << title << text << detail;
    });
    QSignalSpy failed(&window, &MainWindow::loadFailed);
    window.openPath(m_dir.filePath(QStringLiteral("does-not-exist.gguf")));
    QTRY_COMPARE_WITH_TIMEOUT(failed.count(), 1, 10000);
    QCOMPARE(shown.size(), 3);
    QVERIFY(shown[1].contains(QStringLiteral("does-not-exist.gguf")));
    QVERIFY2(shown[2].contains(QStringLiteral("no such file")), qPrintable(shown[2]));
    QVERIFY(!window.findChild<QMessageBox*>());
    QVERIFY(!window.model());
}

void TestMainWindow::dropOpensFile()
{
    MainWindow window;
    window.show();
    QSignalSpy loaded(&window, &MainWindow::modelLoaded);
    QMimeData mime;
    mime.setUrls({QUrl::fromLocalFile(samplePath())});
    QDragEnterEvent enter(QPoint(10, 10), Qt::CopyAction, &mime, Qt::LeftButton, Qt::NoModifier);
    QCoreApplication::sendEvent(&window, &enter);
    QVERIFY(enter.isAccepted());
    QDropEvent drop(QPointF(10, 10), Qt::CopyAction, &mime, Qt::LeftButton, Qt::NoModifier);
    QCoreApplication::sendEvent(&window, &drop);
    QTRY_COMPARE_WITH_TIMEOUT(loaded.count(), 1, 10000);
    QCOMPARE(loaded.at(0).at(0).toString(), QFileInfo(samplePath()).absoluteFilePath());

    // Non-file drops are refused.
    QMimeData text;
    text.setText(QStringLiteral("hello"));
    QDragEnterEvent refused(QPoint(10, 10), Qt::CopyAction, &text, Qt::LeftButton, Qt::NoModifier);
    refused.setAccepted(false);
    QCoreApplication::sendEvent(&window, &refused);
    QVERIFY(!refused.isAccepted());
}

void TestMainWindow::cancelDropsResult()
{
    MainWindow window;
    QSignalSpy loaded(&window, &MainWindow::modelLoaded);
    QSignalSpy cancelled(&window, &MainWindow::loadCancelled);
    window.openPath(samplePath());
    QVERIFY(window.isLoading());
    window.loader()->cancel(); // what the status bar's Cancel button is connected to
    QTRY_COMPARE_WITH_TIMEOUT(cancelled.count(), 1, 10000);
    QCOMPARE(loaded.count(), 0);
    QVERIFY(!window.model());
    QVERIFY(window.recentFiles().isEmpty());
}

void TestMainWindow::persistsRecentFilesAndGeometry()
{
    const QString sample = QFileInfo(samplePath()).absoluteFilePath();
    {
        MainWindow window;
        window.resize(1111, 777);
        window.show();
        QSignalSpy loaded(&window, &MainWindow::modelLoaded);
        window.openPath(samplePath());
        QTRY_COMPARE_WITH_TIMEOUT(loaded.count(), 1, 10000);
        window.close();
    }
    MainWindow again;
    QCOMPARE(again.recentFiles(), QStringList{sample});
    QCOMPARE(again.size(), QSize(1111, 777));
    // The recent-files menu opens the model.
    QAction* entry = nullptr;
    for (QAction* a : again.recentMenu()->actions())
        if (a->data().toString() == sample)
            entry = a;
    QVERIFY(entry);
    QSignalSpy loaded(&again, &MainWindow::modelLoaded);
    entry->trigger();
    QTRY_COMPARE_WITH_TIMEOUT(loaded.count(), 1, 10000);
    QCOMPARE(again.modelPath(), sample);
}

void TestMainWindow::recentFilesTellSameNamesApart()
{
    // Two checkpoints both named model.safetensors (issue 13 #7): each entry shows the folder that differs.
    const QStringList labels = RecentFiles::labels({QStringLiteral("/m/llama-8b/model.safetensors"),
                                                    QStringLiteral("/m/qwen-7b/model.safetensors"),
                                                    QStringLiteral("/m/a/ckpt/w.gguf"), QStringLiteral("/m/b/ckpt/w.gguf"),
                                                    QStringLiteral("/m/stories.gguf")});
    QCOMPARE(labels.value(0), QStringLiteral("model.safetensors \u2014 llama-8b"));
    QCOMPARE(labels.value(1), QStringLiteral("model.safetensors \u2014 qwen-7b"));
    QCOMPARE(labels.value(2), QStringLiteral("w.gguf \u2014 a/ckpt"));
    QCOMPARE(labels.value(3), QStringLiteral("w.gguf \u2014 b/ckpt"));
    QCOMPARE(labels.value(4), QStringLiteral("stories.gguf"));
}

void TestMainWindow::exportRefusalOffersFixes()
{
    // Issue 13 #8: an integer plan that quantizes the embedding and mixes q/k/v formats is refused by
    // compressed-tensors; the refusal names problems and tensors, offers fixes, and each fix is one undo step.
    MainWindow window;
    QSignalSpy loaded(&window, &MainWindow::modelLoaded);
    window.openPath(samplePath());
    QTRY_COMPARE_WITH_TIMEOUT(loaded.count(), 1, 10000);
    PlanDocument* doc = window.planDocument();
    Plan p = doc->plan();
    p.clearAssignments();
    for (const auto& t : doc->layout().tensors)
        if (t.shape.size() == 2)
            p.assign(t.name, "INT8-ch-sym");
    p.assign("blk.0.attn_v.weight", "INT4-ch-sym");
    QVERIFY(doc->setPlan(p, QStringLiteral("integer plan")));

    QString text, shownDetails;
    QStringList fixes;
    int choice = 0;
    window.planSession()->setFixPrompt([&](const QString& t, const QString& details, const QStringList& f,
                                           std::function<void(int)> choose) {
        text = t;
        fixes = f;
        shownDetails = details;
        choose(choice);
    });
    const int steps = doc->undoStack()->count();
    window.planSession()->exportDialog(int(ExportTarget::CompressedTensors));
    QVERIFY2(text.contains(QStringLiteral("4 problems across 4 tensors")), qPrintable(text));
    QVERIFY(shownDetails.contains(QStringLiteral("token_embd.weight (INT8-ch-sym): only Linear layers")));
    QCOMPARE(fixes, (QStringList{QStringLiteral("Keep the embedding and output head at 16 bits"),
                                 QStringLiteral("Give the fused group one format (its most precise)")}));
    QCOMPARE(doc->plan().assignments().at("token_embd.weight"), std::string("BF16"));
    QCOMPARE(doc->undoStack()->count(), steps + 1);
    // Again: only the fused group is left; raising it makes the plan exportable.
    window.planSession()->exportDialog(int(ExportTarget::CompressedTensors));
    QCOMPARE(fixes, QStringList{QStringLiteral("Give the fused group one format (its most precise)")});
    QCOMPARE(doc->plan().assignments().at("blk.0.attn_q.weight"), std::string("INT8-ch-sym"));
    QCOMPARE(doc->plan().assignments().at("blk.0.attn_v.weight"), std::string("INT8-ch-sym"));
    QCOMPARE(doc->undoStack()->count(), steps + 2);
    exportPlan(doc->plan(), ExportTarget::CompressedTensors); // throws on a refusal
}

void TestMainWindow::targetSelectorChecksWhatTheToolStores()
{
    // Issue 13 #1: the plan's tool is chosen on the Plan tab; the issues button then shows what that tool
    // would refuse (the llama.cpp mix holds ggml types GPTQModel cannot store), and the choice is undoable.
    MainWindow window;
    QSignalSpy loaded(&window, &MainWindow::modelLoaded);
    window.openPath(samplePath());
    QTRY_COMPARE_WITH_TIMEOUT(loaded.count(), 1, 10000);
    auto* target = window.findChild<QComboBox*>(QStringLiteral("planTarget"));
    auto* issues = window.findChild<IssuesButton*>();
    QVERIFY(target && issues);
    PlanDocument* doc = window.planDocument();
    QCOMPARE(target->currentData().toInt(), int(doc->plan().target()));
    QCOMPARE(issues->issueCount(), 0);
    const int steps = doc->undoStack()->count();
    target->setCurrentIndex(target->findData(int(ExportTarget::GptqModel)));
    QCOMPARE(doc->plan().target(), ExportTarget::GptqModel);
    QCOMPARE(doc->undoStack()->count(), steps + 1);
    QVERIFY2(issues->issueCount() > 0, "GPTQModel cannot store the llama.cpp mix");
    // An integer preset for GPTQModel keeps embedding and head at 16 bits and has nothing to refuse.
    QVERIFY(doc->applyPreset(QStringLiteral("all-INT8-ch-sym")));
    QCOMPARE(doc->plan().formatOf("token_embd.weight").value_or(""), std::string("BF16"));
    QCOMPARE(issues->issueCount(), 0);
    exportPlan(doc->plan(), ExportTarget::GptqModel); // throws on a refusal
    doc->undoStack()->undo();
    doc->undoStack()->undo();
    QCOMPARE(target->currentData().toInt(), int(doc->plan().target()));
    // A preset the plan's tool cannot express (INT4 for llama.cpp) makes a plan for any tool, and the box
    // follows, instead of failing.
    QCOMPARE(doc->plan().target(), ExportTarget::LlamaCpp);
    QVERIFY(doc->applyPreset(QStringLiteral("all-INT4-g32-sym")));
    QCOMPARE(doc->plan().target(), ExportTarget::PlanJson);
    QCOMPARE(target->currentData().toInt(), int(ExportTarget::PlanJson));
}

void TestMainWindow::planUndoShortcutsAndSync()
{
    MainWindow window;
    window.show();
    QApplication::setActiveWindow(&window);
    QVERIFY(QTest::qWaitForWindowActive(&window));
    QSignalSpy loaded(&window, &MainWindow::modelLoaded);
    window.openPath(samplePath());
    QTRY_COMPARE_WITH_TIMEOUT(loaded.count(), 1, 10000);
    PlanDocument* plan = window.planDocument();
    QVERIFY(plan->hasModel());
    QVERIFY(!plan->plan().assignments().empty()); // the default preset assigned formats

    const QString name = QStringLiteral("blk.1.ffn_up.weight");
    const QString before = QString::fromStdString(plan->plan().formatOf(name.toStdString()).value_or(""));
    auto* tree = window.tensorModel();
    const QModelIndex planCell = tree->indexForTensor(name).siblingAtColumn(TensorTreeModel::PlanColumn);
    QCOMPARE(planCell.data().toString(), before);

    const QString target = before == QLatin1String("Q8_0") ? QStringLiteral("BF16") : QStringLiteral("Q8_0");
    QVERIFY(plan->assign({name}, target));
    QCOMPARE(planCell.data().toString(), target); // the tree follows the plan

    QVERIFY(window.showView(QStringLiteral("plan")));
    QTest::keySequence(&window, QKeySequence(QStringLiteral("Ctrl+Z")));
    QCOMPARE(QString::fromStdString(plan->plan().formatOf(name.toStdString()).value_or("")), before);
    QCOMPARE(planCell.data().toString(), before);
    QTest::keySequence(&window, QKeySequence(QStringLiteral("Ctrl+Shift+Z")));
    QCOMPARE(QString::fromStdString(plan->plan().formatOf(name.toStdString()).value_or("")), target);

    // Selecting a tensor anywhere selects it on the tier board too.
    window.selectTensors({name});
    TierBoardModel* board = window.tierBoard()->model();
    const QModelIndex onBoard = board->indexForTensor(name);
    QTreeView* column = window.tierBoard()->tierView(board->tierOf(onBoard));
    QVERIFY(column);
    QVERIFY(column->selectionModel()->isSelected(onBoard));
}

void TestMainWindow::autosavedPlanIsOfferedAfterCrash()
{
    const QString model = QFileInfo(samplePath()).absoluteFilePath();
    const std::string name = "blk.2.attn_v.weight";
    discardAutosave(model.toStdString());
    {
        auto* window = new MainWindow; // never closed normally: the "crash"
        window->setRestorePrompt([](const QString&, std::function<void(bool)>) { QFAIL("nothing to restore yet"); });
        QSignalSpy loaded(window, &MainWindow::modelLoaded);
        window->openPath(samplePath());
        QTRY_COMPARE_WITH_TIMEOUT(loaded.count(), 1, 10000);
        QVERIFY(window->planDocument()->assign({QString::fromStdString(name)}, QStringLiteral("BF16")));
        QTRY_VERIFY_WITH_TIMEOUT(QFileInfo::exists(QString::fromStdString(autosavePath(model.toStdString()).string())),
                                 10000);
        delete window;
    }
    MainWindow again;
    QStringList offered;
    again.setRestorePrompt([&](const QString& path, std::function<void(bool)> answer) {
        offered << path;
        answer(true);
    });
    QSignalSpy loaded(&again, &MainWindow::modelLoaded);
    again.openPath(samplePath());
    QTRY_COMPARE_WITH_TIMEOUT(loaded.count(), 1, 10000);
    QCOMPARE(offered.size(), 1);
    QCOMPARE(again.planDocument()->plan().formatOf(name).value_or(""), std::string("BF16"));
    QCOMPARE(again.planDocument()->undoStack()->count(), 1); // restoring is itself undoable

    // Saving the plan discards the autosave: the next start offers nothing.
    QVERIFY(again.savePlanTo(m_dir.filePath(QStringLiteral("saved.plan.json"))));
    QVERIFY(!QFileInfo::exists(QString::fromStdString(autosavePath(model.toStdString()).string())));
    QVERIFY(loadPlan(m_dir.filePath(QStringLiteral("saved.plan.json")).toStdString()) == again.planDocument()->plan());
}

void TestMainWindow::switchingModelsKeepsEditedPlan()
{
    // Issue 13 #10: opening a model right after an edit (before the autosave delay) keeps the edit: it is
    // written at the switch, said in the status bar, and offered when the model is opened again.
    const QString model = QFileInfo(samplePath()).absoluteFilePath();
    const std::string name = "blk.2.attn_v.weight";
    discardAutosave(model.toStdString());
    MainWindow window;
    QStringList offered;
    window.setRestorePrompt([&](const QString& path, std::function<void(bool)> answer) {
        offered << path;
        answer(true);
    });
    QSignalSpy loaded(&window, &MainWindow::modelLoaded);
    window.openPath(samplePath());
    QTRY_COMPARE_WITH_TIMEOUT(loaded.count(), 1, 10000);
    QVERIFY(offered.isEmpty());
    QVERIFY(window.planDocument()->assign({QString::fromStdString(name)}, QStringLiteral("BF16")));
    window.openPath(samplePath());
    QTRY_COMPARE_WITH_TIMEOUT(loaded.count(), 2, 10000);
    QCOMPARE(offered.size(), 1);
    QCOMPARE(window.planDocument()->plan().formatOf(name).value_or(""), std::string("BF16"));

    // The preset box follows the plan: a preset applied here, then a new plan for the reopened model shows
    // that model's default preset again, not the previous choice.
    auto* presets = window.findChild<QComboBox*>(QStringLiteral("planPreset"));
    QVERIFY(presets);
    const QString initial = QString::fromStdString(window.planDocument()->plan().preset());
    QVERIFY(!initial.isEmpty());
    QCOMPARE(presets->currentText(), initial);
    QVERIFY(window.planDocument()->applyPreset(QStringLiteral("all-Q8_0")));
    QCOMPARE(presets->currentText(), QStringLiteral("all-Q8_0"));
    window.setRestorePrompt([](const QString&, std::function<void(bool)> answer) { answer(false); });
    window.openPath(samplePath());
    QTRY_COMPARE_WITH_TIMEOUT(loaded.count(), 3, 10000);
    QCOMPARE(presets->currentText(), initial);
    discardAutosave(model.toStdString());
}

void TestMainWindow::groupSelectionShowsMergedHistogram()
{
    MainWindow window;
    window.show();
    QSignalSpy analysed(&window, &MainWindow::analysisFinished);
    window.openPath(samplePath());
    QTRY_COMPARE_WITH_TIMEOUT(analysed.count(), 1, 30000);
    // Select the "Block 1" group row of the tree.
    QAbstractItemModel* shown = window.tensorView()->model();
    QModelIndex block1;
    for (int g = 0; g < shown->rowCount(); ++g)
        if (shown->index(g, 0).data().toString() == QLatin1String("Block 1"))
            block1 = shown->index(g, 0);
    QVERIFY(block1.isValid());
    window.tensorView()->selectionModel()->select(block1, QItemSelectionModel::ClearAndSelect | QItemSelectionModel::Rows);
    QCOMPARE(window.histogramView()->binned().size(), size_t(1));
    uint64_t plotted = 0;
    for (uint64_t c : window.histogramView()->binned().front().counts)
        plotted += c;
    // Every value of the block's 9 tensors (all finite F32), counted from the model here.
    uint64_t expected = 0;
    for (const auto& t : window.model()->tensors())
        if (t.role.block == 1)
            expected += t.elements();
    QCOMPARE(plotted, expected);
    QVERIFY(window.histogramView()->plot()->graph(0)->name().contains(QStringLiteral("merged")));
}

void TestMainWindow::fitToBudgetDialog()
{
    MainWindow window;
    window.show();
    QSignalSpy loaded(&window, &MainWindow::modelLoaded);
    window.openPath(samplePath());
    QTRY_COMPARE_WITH_TIMEOUT(loaded.count(), 1, 10000);
    window.fitPlanToBudget();
    QDialog* dialog = window.findChild<QDialog*>(QStringLiteral("budgetDialog"));
    QVERIFY(dialog && dialog->isVisible());
    auto* view = dialog->findChild<TradeoffView*>();
    QVERIFY(view);
    const auto curve = view->curve(); // a copy: the dialog is gone once the solve is applied
    QVERIFY(curve.size() >= 2);
    for (size_t i = 1; i < curve.size(); ++i) { // the frontier: larger plans, smaller error
        QVERIFY(curve[i].bytes > curve[i - 1].bytes);
        QVERIFY(curve[i].error <= curve[i - 1].error);
    }
    // The default budget is one a plan can meet: never below the smallest plan (1 KiB of display rounding).
    auto* spin = dialog->findChild<QDoubleSpinBox*>();
    QVERIFY2(spin->value() * 1024.0 * 1024.0 >= double(curve.front().bytes) - 1024.0,
             qPrintable(QStringLiteral("%1 MiB < %2 bytes").arg(spin->value()).arg(curve.front().bytes)));
    // Ask for the middle of the curve.
    const uint64_t budget = (curve.front().bytes + curve.back().bytes) / 2;
    spin->setValue(double(budget) / (1024.0 * 1024.0));
    const int steps = window.planDocument()->undoStack()->count();
    const uint64_t asked = uint64_t(spin->value() * 1024.0 * 1024.0);
    dialog->accept(); // the dialog deletes itself once the solve (a background job) is applied
    QTRY_COMPARE(window.planDocument()->undoStack()->count(), steps + 1);
    QVERIFY(window.footprintPanel()->weightBytes() <= asked);
    // Better than the smallest plan: the solver used the room it was given.
    QVERIFY(window.footprintPanel()->weightBytes() > curve.front().bytes);
}

void TestMainWindow::configOnlyPlansWithoutWeights()
{
    // A Llama-3-8B-shaped config.json and nothing else.
    const QString dir = m_dir.filePath(QStringLiteral("config-only"));
    QVERIFY(QDir().mkpath(dir));
    QFile config(dir + QStringLiteral("/config.json"));
    QVERIFY(config.open(QIODevice::WriteOnly));
    config.write(R"({"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":4096,
        "intermediate_size":14336,"num_attention_heads":32,"num_hidden_layers":32,"num_key_value_heads":8,
        "vocab_size":128256,"max_position_embeddings":8192,"tie_word_embeddings":false,"torch_dtype":"bfloat16"})");
    config.close();
    MainWindow window;
    QSignalSpy loaded(&window, &MainWindow::modelLoaded);
    window.openPath(config.fileName());
    QTRY_COMPARE_WITH_TIMEOUT(loaded.count(), 1, 10000);
    // 32 blocks of 9 tensors, embedding, final norm, head.
    QCOMPARE(window.model()->tensors().size(), size_t(32 * 9 + 3));
    QCOMPARE(tensorRows(window.tensorView()->model()), 32 * 9 + 3);
    QVERIFY(!window.isAnalyzing());
    QVERIFY(window.planDocument()->hasModel());
    QVERIFY(!window.planDocument()->plan().assignments().empty());
    // Weights of the derived BF16 checkpoint: 8,030,261,248 parameters × 2 bytes.
    QCOMPARE(window.model()->parameterCount(), uint64_t(8030261248));
    QCOMPARE(window.model()->totalBytes(), uint64_t(8030261248) * 2);
}

QTEST_MAIN(TestMainWindow)
#include "tst_mainwindow.moc"
