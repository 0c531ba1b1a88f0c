#include "app/gui/mainwindow.h"

#include "app/gui/modelloader.h"
#include "core/stats/stats.h"
#include "widgets/channelview.h"
#include "widgets/depthview.h"
#include "core/plan/budget.h"
#include "core/plan/export.h"
#include "core/plan/modellayout.h"
#include "core/plan/planio.h"
#include "widgets/footprintpanel.h"
#include "widgets/formatting.h"
#include "widgets/plandocument.h"
#include "widgets/sensitivitystore.h"
#include "widgets/sensitivityview.h"
#include "widgets/tierboardview.h"
#include "widgets/tradeoffview.h"
#include "widgets/histogramview.h"
#include "widgets/modelsummary.h"
#include "widgets/statsstore.h"
#include "widgets/statstablemodel.h"
#include "widgets/statstableview.h"
#include "widgets/tensorfilterproxy.h"
#include "widgets/tensortreemodel.h"

#include <QAction>
#include <QApplication>
#include <QCloseEvent>
#include <QCoreApplication>
#include <QDir>
#include <QDockWidget>
#include <QDragEnterEvent>
#include <QDropEvent>
#include <QFileDialog>
#include <QFileInfo>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QMenuBar>
#include <QMessageBox>
#include <QMimeData>
#include <QComboBox>
#include <QDialog>
#include <QDialogButtonBox>
#include <QDoubleSpinBox>
#include <QPushButton>
#include <QItemSelectionModel>
#include <QMenu>
#include <QScrollArea>
#include <QSplitter>
#include <QUndoStack>
#include <QProgressBar>
#include <QRegularExpression>
#include <QSettings>
#include <QStatusBar>
#include <QStyle>
#include <QTabWidget>
#include <QTimer>
#include <QToolBar>
#include <QToolButton>
#include <QTreeView>
#include <QVBoxLayout>

// The resources live in the static quantscope_app library: without a reference, the linker drops them.
static void initResources()
{
    Q_INIT_RESOURCE(resources);
}

namespace qs {

namespace {

constexpr int maxRecentFiles = 10;
constexpr int expandAllLimit = 80; // tensors; larger models open with only the first groups expanded
constexpr int maxOverlaySeries = 8;

QIcon themedIcon(const char* themeName, const char* resource)
{
    return QIcon::fromTheme(QLatin1String(themeName), QIcon(QLatin1String(resource)));
}

// The path to open for a set of dropped local files: one file or folder as is; several files of one
// folder (e.g. the shards of a model) open that folder.
QString pathForDrop(const QMimeData* mime)
{
    if (!mime || !mime->hasUrls())
        return {};
    QStringList files;
    for (const QUrl& url : mime->urls())
        if (url.isLocalFile())
            files << url.toLocalFile();
    if (files.isEmpty())
        return {};
    if (files.size() == 1)
        return files.front();
    const QString dir = QFileInfo(files.front()).absolutePath();
    for (const QString& f : files)
        if (QFileInfo(f).absolutePath() != dir)
            return files.front();
    return dir;
}

} // namespace

MainWindow::MainWindow(QWidget* parent)
    : QMainWindow(parent), m_loader(new ModelLoader(this)), m_stats(new StatsStore(this)),
      m_plan(new PlanDocument(this))
{
    initResources();
    setWindowIcon(QIcon(QStringLiteral(":/icons/quantscope.svg")));
    setAcceptDrops(true);
    setDockNestingEnabled(true);

    m_errorPresenter = [this](const QString& title, const QString& text, const QString& detail) {
        auto* box = new QMessageBox(QMessageBox::Critical, title, text, QMessageBox::Ok, this);
        box->setInformativeText(detail);
        box->setTextInteractionFlags(Qt::TextSelectableByMouse);
        box->setAttribute(Qt::WA_DeleteOnClose);
        box->setObjectName(QStringLiteral("loadErrorBox"));
        box->open(); // window-modal, no nested event loop
    };

    createViews();
    createActions();
    createStatusBar();

    // The tree and the table show each tensor's planned format and follow every plan edit.
    auto formatOf = [this](const std::string& name) {
        const auto f = m_plan->plan().formatOf(name);
        return f ? QString::fromStdString(*f) : QString();
    };
    m_treeModel->setFormatLookup(formatOf);
    m_statsView->tableModel()->setFormatLookup(formatOf);
    connect(m_plan, &PlanDocument::planChanged, this, [this] {
        m_treeModel->planChanged();
        m_statsView->tableModel()->planChanged();
    });
    // (The undo stack's index moves after the command ran, so this, not planChanged, knows "clean".)
    connect(m_plan->undoStack(), &QUndoStack::indexChanged, this, [this] {
        if (m_plan->undoStack()->isClean())
            m_autosaveTimer->stop();
        else
            m_autosaveTimer->start();
    });
    // Edits are autosaved shortly after they happen, so a crash loses at most a second or two.
    m_autosaveTimer = new QTimer(this);
    m_autosaveTimer->setSingleShot(true);
    m_autosaveTimer->setInterval(1500);
    connect(m_autosaveTimer, &QTimer::timeout, this, &MainWindow::autosavePlan);
    m_restorePrompt = [this](const QString& autosave, std::function<void(bool)> answer) {
        auto* box = new QMessageBox(QMessageBox::Question, tr("Restore Plan"),
                                    tr("An unsaved precision plan for this model was found."),
                                    QMessageBox::Yes | QMessageBox::No, this);
        box->setInformativeText(tr("Restore it? (%1)").arg(QDir::toNativeSeparators(autosave)));
        box->setAttribute(Qt::WA_DeleteOnClose);
        box->setObjectName(QStringLiteral("restorePlanBox"));
        connect(box, &QMessageBox::finished, this, [box, answer](int) {
            answer(box->standardButton(box->clickedButton()) == QMessageBox::Yes);
        });
        box->open();
    };

    connect(m_loader, &ModelLoader::started, this, &MainWindow::onLoadStarted);
    connect(m_loader, &ModelLoader::progress, this, &MainWindow::onLoadProgress);
    connect(m_loader, &ModelLoader::loaded, this, &MainWindow::onLoaded);
    connect(m_loader, &ModelLoader::failed, this, &MainWindow::onLoadFailed);
    connect(m_loader, &ModelLoader::cancelled, this, &MainWindow::onLoadCancelled);
    connect(m_stats, &StatsStore::progressChanged, this, &MainWindow::onAnalysisProgress);
    connect(m_stats, &StatsStore::finished, this, &MainWindow::onAnalysisFinished);
    connect(m_stats, &StatsStore::tensorsReady, this, [this](const std::vector<size_t>& indices) {
        // Refresh the plots only when something they show has arrived.
        if (!m_model)
            return;
        for (size_t i : indices) {
            const QString name = QString::fromStdString(m_model->tensors()[i].name);
            bool shown = m_selectedNames.contains(name);
            for (const auto& [title, members] : m_selectedGroups)
                shown = shown || members.contains(name);
            if (shown) {
                updateAnalysisViews();
                return;
            }
        }
    });

    readSettings();
    updateTitle();
}

MainWindow::~MainWindow()
{
    // Children are destroyed after this body, while MainWindow is already gone: nothing they emit on the
    // way may reach back into it.
    m_treeModel->setFormatLookup({});
    m_statsView->tableModel()->setFormatLookup({});
    for (QObject* child : findChildren<QObject*>())
        child->disconnect(this);
    m_stats->cancel();
    m_sensitivity->cancel();
    m_loader->cancel();
}

void MainWindow::createViews()
{
    m_treeModel = new TensorTreeModel(this);
    m_proxy = new TensorFilterProxy(this);
    m_proxy->setSourceModel(m_treeModel);

    auto* tensorsPage = new QWidget;
    auto* layout = new QVBoxLayout(tensorsPage);
    layout->setContentsMargins(4, 4, 4, 4);
    m_filterEdit = new QLineEdit(tensorsPage);
    m_filterEdit->setPlaceholderText(tr("Filter tensors by name or role (regular expression, e.g. ffn_down|attn_q)"));
    m_filterEdit->setClearButtonEnabled(true);
    connect(m_filterEdit, &QLineEdit::textChanged, this, &MainWindow::applyFilter);
    layout->addWidget(m_filterEdit);

    m_tensorView = new QTreeView(tensorsPage);
    m_tensorView->setObjectName(QStringLiteral("tensorTree"));
    m_tensorView->setModel(m_proxy);
    m_tensorView->setSortingEnabled(true);
    m_tensorView->sortByColumn(-1, Qt::AscendingOrder); // file order until the user clicks a header
    m_tensorView->setAlternatingRowColors(true);
    m_tensorView->setUniformRowHeights(true);
    m_tensorView->setSelectionMode(QAbstractItemView::ExtendedSelection);
    m_tensorView->setSelectionBehavior(QAbstractItemView::SelectRows);
    m_tensorView->header()->setStretchLastSection(false);
    m_tensorView->header()->setSectionResizeMode(QHeaderView::Interactive);
    m_tensorView->header()->setSectionResizeMode(TensorTreeModel::NameColumn, QHeaderView::Stretch);
    m_tensorView->header()->setMinimumSectionSize(60);
    m_tensorView->header()->setSortIndicatorShown(true);
    layout->addWidget(m_tensorView);

    m_views = new QTabWidget(this);
    m_views->setDocumentMode(true);
    m_views->addTab(tensorsPage, tr("Tensors"));
    tensorsPage->setObjectName(QStringLiteral("view:tensors"));
    m_statsView = new StatsTableView(m_stats);
    m_statsView->setObjectName(QStringLiteral("view:statistics"));
    m_views->addTab(m_statsView, tr("Statistics"));
    m_depth = new DepthView(m_stats);
    m_depth->setObjectName(QStringLiteral("view:depth"));
    m_views->addTab(m_depth, tr("Depth Overview"));
    QWidget* planPage = createPlanView();
    planPage->setObjectName(QStringLiteral("view:plan"));
    m_views->addTab(planPage, tr("Plan"));
    createSensitivityView();
    setCentralWidget(m_views);
    // The plan needs the room: the histogram and channel docks step aside while it is shown.
    connect(m_views, &QTabWidget::currentChanged, this, [this, planPage](int index) {
        static const char* const docks[] = {"histogramDock", "channelDock", "summaryDock"};
        const bool plan = m_views->widget(index) == planPage;
        for (const char* name : docks) {
            auto* dock = findChild<QDockWidget*>(QLatin1String(name));
            if (!dock)
                continue;
            if (plan) {
                dock->setProperty("shownBeforePlan", dock->isVisible());
                dock->hide();
            } else if (dock->property("shownBeforePlan").toBool()) {
                dock->setProperty("shownBeforePlan", false);
                dock->show();
            }
        }
    });

    connect(m_tensorView->selectionModel(), &QItemSelectionModel::selectionChanged, this,
            &MainWindow::onTreeSelectionChanged);
    connect(m_statsView, &StatsTableView::selectionChanged, this, [this](const QStringList& names) {
        if (!m_syncingSelection)
            selectTensors(names);
    });
    connect(m_depth, &DepthView::tensorActivated, this, [this](const QString& name) { selectTensors({name}); });

    m_histogram = new HistogramView(this);
    auto* histogramDock = new QDockWidget(tr("Histogram"), this);
    histogramDock->setObjectName(QStringLiteral("histogramDock"));
    histogramDock->setWidget(m_histogram);
    addDockWidget(Qt::BottomDockWidgetArea, histogramDock);
    m_channels = new ChannelView(this);
    auto* channelDock = new QDockWidget(tr("Channels"), this);
    channelDock->setObjectName(QStringLiteral("channelDock"));
    channelDock->setWidget(m_channels);
    addDockWidget(Qt::BottomDockWidgetArea, channelDock);
    splitDockWidget(histogramDock, channelDock, Qt::Horizontal);
    resizeDocks({histogramDock}, {360}, Qt::Vertical);

    m_summary = new ModelSummaryWidget(this);
    auto* summaryDock = new QDockWidget(tr("Model"), this);
    summaryDock->setObjectName(QStringLiteral("summaryDock"));
    summaryDock->setWidget(m_summary);
    summaryDock->setMinimumWidth(260);
    addDockWidget(Qt::RightDockWidgetArea, summaryDock);
}

QWidget* MainWindow::createPlanView()
{
    auto* page = new QWidget;
    auto* layout = new QVBoxLayout(page);
    layout->setContentsMargins(4, 4, 4, 4);
    auto* bar = new QToolBar;
    bar->setIconSize(QSize(16, 16));
    bar->setToolButtonStyle(Qt::ToolButtonTextBesideIcon);
    auto* presetLabel = new QLabel(tr("Preset: "));
    bar->addWidget(presetLabel);
    auto* presets = new QComboBox;
    presets->setObjectName(QStringLiteral("planPreset"));
    for (const std::string& name : presetNames())
        presets->addItem(QString::fromStdString(name));
    bar->addWidget(presets);
    bar->addAction(tr("Apply Preset"), this, [this, presets] {
        try {
            m_plan->applyPreset(presets->currentText());
        } catch (const std::exception& e) {
            m_errorPresenter(tr("Preset"), tr("Cannot apply %1").arg(presets->currentText()),
                             QString::fromStdString(e.what()));
        }
    });
    bar->addSeparator();
    bar->addAction(tr("Fit to Budget…"), this, &MainWindow::fitPlanToBudget)
        ->setToolTip(tr("Choose every tensor's tier to minimise the predicted error within a size budget"));
    auto* exportButton = new QToolButton;
    exportButton->setText(tr("Export"));
    exportButton->setIcon(themedIcon("document-export", ":/icons/export.svg"));
    exportButton->setToolButtonStyle(Qt::ToolButtonTextBesideIcon);
    exportButton->setPopupMode(QToolButton::InstantPopup);
    auto* exportMenu = new QMenu(exportButton);
    for (auto target : {ExportTarget::LlamaCpp, ExportTarget::GptqModel, ExportTarget::LlmCompressor,
                        ExportTarget::CompressedTensors, ExportTarget::PlanJson}) {
        static const char* const titles[] = {"llama.cpp tensor types…", "GPTQModel quantize_config…",
                                             "llm-compressor recipe…", "compressed-tensors config…",
                                             "Quantscope plan (JSON)…"};
        exportMenu->addAction(tr(titles[int(target)]), this, [this, target] { exportPlanTo(int(target)); });
    }
    exportButton->setMenu(exportMenu);
    bar->addWidget(exportButton);
    bar->addAction(tr("Open Plan…"), this, &MainWindow::openPlanFile);
    QAction* save = bar->addAction(themedIcon("document-save", ":/icons/export.svg"), tr("Save Plan…"), this,
                                   &MainWindow::savePlanDialog);
    save->setShortcut(QKeySequence::Save);
    bar->addSeparator();
    // Constraint warnings (fused q/k/v, unsupported shapes ...) with their one-click fixes.
    auto* issues = new QToolButton;
    issues->setObjectName(QStringLiteral("planIssues"));
    issues->setPopupMode(QToolButton::InstantPopup);
    issues->setToolButtonStyle(Qt::ToolButtonTextBesideIcon);
    auto* issuesMenu = new QMenu(issues);
    issues->setMenu(issuesMenu);
    bar->addWidget(issues);
    auto updateIssues = [this, issues, issuesMenu] {
        issuesMenu->clear();
        std::vector<PlanIssue> found;
        if (m_plan->hasModel()) {
            try {
                found = checkPlan(m_plan->plan(), m_plan->layout());
            } catch (const std::exception&) {
            }
        }
        issues->setText(found.empty() ? tr("No issues") : tr("%1 issue(s)").arg(found.size()));
        issues->setIcon(found.empty() ? QIcon() : style()->standardIcon(QStyle::SP_MessageBoxWarning));
        issues->setEnabled(!found.empty());
        for (const PlanIssue& issue : found) {
            QMenu* sub = issuesMenu->addMenu(QString::fromStdString(issue.message).left(120));
            sub->setToolTipsVisible(true);
            for (const PlanFix& fix : issue.fixes)
                sub->addAction(QString::fromStdString(fix.label), this, [this, fix] {
                    m_plan->setPlan(applyFix(m_plan->plan(), fix), QString::fromStdString(fix.label));
                });
            if (issue.fixes.empty())
                sub->addAction(tr("No automatic fix"))->setEnabled(false);
        }
        if (found.size() > 1) {
            issuesMenu->addSeparator();
            issuesMenu->addAction(tr("Apply Every Recommended Fix"), this, [this, found] {
                Plan fixed = m_plan->plan();
                for (const PlanIssue& issue : found)
                    if (!issue.fixes.empty())
                        fixed = applyFix(fixed, issue.fixes.front());
                m_plan->setPlan(fixed, tr("Fix %1 issues").arg(found.size()));
            });
        }
    };
    connect(m_plan, &PlanDocument::planChanged, this, updateIssues);
    updateIssues();
    bar->addSeparator();
    QAction* undo = m_plan->undoStack()->createUndoAction(this, tr("Undo"));
    undo->setIcon(themedIcon("edit-undo", ":/icons/undo.svg"));
    undo->setShortcut(QKeySequence::Undo);
    QAction* redo = m_plan->undoStack()->createRedoAction(this, tr("Redo"));
    redo->setIcon(themedIcon("edit-redo", ":/icons/redo.svg"));
    redo->setShortcuts({QKeySequence(tr("Ctrl+Shift+Z")), QKeySequence::Redo});
    undo->setObjectName(QStringLiteral("undoAction"));
    redo->setObjectName(QStringLiteral("redoAction"));
    bar->addAction(undo);
    bar->addAction(redo);
    auto* hint = new QLabel(tr("   Drag tensors or whole blocks between tiers · right-click or Ctrl+←/→ to move"));
    hint->setStyleSheet(QStringLiteral("color: #666;"));
    bar->addWidget(hint);
    layout->addWidget(bar);

    auto* splitter = new QSplitter(Qt::Horizontal);
    m_tierBoard = new TierBoardView(m_plan);
    connect(m_tierBoard, &TierBoardView::tensorActivated, this, [this](const QString& name) { selectTensors({name}); });
    connect(m_tierBoard, &TierBoardView::tensorSelected, this, [this](const QString& name) {
        if (!m_syncingSelection)
            selectTensors({name});
    });
    splitter->addWidget(m_tierBoard);
    m_footprint = new FootprintPanel(m_plan);
    // Scrolls instead of imposing its height on the window.
    auto* footprintScroll = new QScrollArea;
    footprintScroll->setWidget(m_footprint);
    footprintScroll->setWidgetResizable(true);
    footprintScroll->setFrameShape(QFrame::NoFrame);
    footprintScroll->setMaximumWidth(440);
    footprintScroll->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    splitter->addWidget(footprintScroll);
    splitter->setStretchFactor(0, 3);
    splitter->setStretchFactor(1, 1);
    layout->addWidget(splitter, 1);
    return page;
}

void MainWindow::fitPlanToBudget()
{
    if (!m_plan->hasModel())
        return;
    const ModelLayout& layout = m_plan->layout();
    BudgetProblem problem;
    std::vector<TradeoffPoint> curve;
    // The measured sensitivity matrix, when computed, replaces the size-based proxy.
    const ErrorTable errors =
        m_sensitivity->isRunning() ? ErrorTable{} : errorTableFromSensitivity(m_sensitivity->results());
    try {
        problem = makeBudgetProblem(m_plan->plan(), layout, errors);
        curve = tradeoffCurve(problem);
    } catch (const std::exception& e) {
        m_errorPresenter(tr("Fit to Budget"), tr("The budget problem could not be built."),
                         QString::fromStdString(e.what()));
        return;
    }
    const uint64_t currentBytes = summarizeWeights(layout, planBytesFn(m_plan->plan())).bytes;
    double currentError = 0;
    size_t currentMissing = 0;
    try {
        const PlanErrorSummary summary = planError(m_plan->plan(), layout, errors);
        // A tensor assigned a format the matrix has no cell for (n/a) has no known error: no honest point.
        currentMissing = summary.missing;
        currentError = currentMissing ? 0.0 : summary.error;
    } catch (const std::exception&) {
    }

    // Non-blocking dialog: the trade-off curve to pick a point on, or a number to type.
    auto* dialog = new QDialog(this);
    dialog->setObjectName(QStringLiteral("budgetDialog"));
    dialog->setWindowTitle(tr("Fit to Budget"));
    dialog->setAttribute(Qt::WA_DeleteOnClose);
    auto* layoutBox = new QVBoxLayout(dialog);
    QString errorSource;
    if (errors.empty()) {
        errorSource =
            tr("Without a sensitivity matrix (Sensitivity tab › Compute) the error is a size-based proxy.");
    } else {
        errorSource = tr("Errors are the measured sensitivity matrix (total squared error per tensor; "
                         "tensors without measurements use the size-based proxy).");
        if (currentMissing)
            errorSource += QLatin1Char(' ')
                           + tr("The current plan is not shown: %1 a format the matrix marks n/a.")
                                 .arg(countNoun(currentMissing, "tensor has", "tensors have"));
    }
    auto* intro = new QLabel(tr("Each tensor gets the tier that minimises the total predicted error within the budget "
                                "(exact multiple-choice knapsack). %1 Click the curve to pick a size.")
                                 .arg(errorSource));
    intro->setWordWrap(true);
    layoutBox->addWidget(intro);
    auto* view = new TradeoffView;
    view->setCurve(curve, currentBytes, currentError);
    layoutBox->addWidget(view, 1);
    auto* row = new QHBoxLayout;
    row->addWidget(new QLabel(tr("Weight budget:")));
    auto* spin = new QDoubleSpinBox;
    spin->setDecimals(3);
    spin->setRange(0.001, 1e9);
    spin->setSuffix(tr(" MiB"));
    spin->setValue(double(currentBytes) * 0.8 / (1024.0 * 1024.0));
    row->addWidget(spin, 1);
    layoutBox->addLayout(row);
    auto* buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel);
    buttons->button(QDialogButtonBox::Ok)->setText(tr("Fit"));
    layoutBox->addWidget(buttons);
    view->setBudget(uint64_t(spin->value() * 1024.0 * 1024.0));
    connect(view, &TradeoffView::budgetChosen, spin, [spin](uint64_t bytes) {
        spin->setValue(double(bytes) / (1024.0 * 1024.0));
    });
    connect(spin, &QDoubleSpinBox::valueChanged, view, [view](double value) {
        view->setBudget(uint64_t(value * 1024.0 * 1024.0));
    });
    connect(buttons, &QDialogButtonBox::rejected, dialog, &QDialog::reject);
    connect(buttons, &QDialogButtonBox::accepted, dialog, &QDialog::accept);
    connect(dialog, &QDialog::accepted, this, [this, spin, problem] {
        const double value = spin->value();
        applyBudget(problem, uint64_t(value * 1024.0 * 1024.0));
    });
    dialog->resize(640, 480);
    dialog->open();
}

bool MainWindow::applyBudget(const BudgetProblem& problem, uint64_t budgetBytes)
{
    try {
        const BudgetSolution solution = solveBudget(problem, budgetBytes);
        if (!solution.feasible) {
            m_errorPresenter(tr("Fit to Budget"), tr("No plan fits in %1.").arg(formatBytes(budgetBytes)),
                             tr("The smallest plan with these tiers needs %1.").arg(formatBytes(solution.bytes)));
            return false;
        }
        m_plan->setPlan(applySolution(m_plan->plan(), problem, solution),
                        tr("Fit to %1").arg(formatBytes(budgetBytes)));
        statusBar()->showMessage(tr("Fitted to %1: %2%3")
                                     .arg(formatBytes(budgetBytes), formatBytes(solution.bytes),
                                          solution.optimal ? tr(", proven optimal") : tr(", gap %1").arg(solution.gap)),
                                 8000);
        return true;
    } catch (const std::exception& e) {
        m_errorPresenter(tr("Fit to Budget"), tr("The budget could not be solved."), QString::fromStdString(e.what()));
        return false;
    }
}

void MainWindow::exportPlanTo(int targetId)
{
    if (!m_plan->hasModel())
        return;
    const auto target = ExportTarget(targetId);
    try {
        const ExportResult result = exportPlan(m_plan->plan(), target);
        QSettings settings;
        const QString dir = settings.value(QStringLiteral("exportDirectory")).toString();
        const QString path = QFileDialog::getSaveFileName(
            this, tr("Export Plan"), QDir(dir).filePath(QString::fromLatin1(exportDefaultFileName(target))));
        if (path.isEmpty())
            return;
        settings.setValue(QStringLiteral("exportDirectory"), QFileInfo(path).absolutePath());
        writeExport(result, path.toStdString());
        QStringList how;
        for (const auto& c : result.commands)
            how << QString::fromStdString(c);
        for (const auto& n : result.notes)
            how << QString::fromStdString(n);
        statusBar()->showMessage(tr("Exported %1").arg(QDir::toNativeSeparators(path)), 8000);
        if (!how.isEmpty())
            QMessageBox::information(this, tr("Plan Exported"), tr("Wrote %1").arg(path), QMessageBox::Ok);
    } catch (const ExportError& e) {
        QStringList lines;
        for (const auto& p : e.problems())
            lines << QStringLiteral("%1 (%2): %3").arg(QString::fromStdString(p.tensor), QString::fromStdString(p.format),
                                                       QString::fromStdString(p.reason));
        m_errorPresenter(tr("Export Plan"),
                         tr("This plan cannot be expressed for %1.").arg(QString::fromLatin1(exportTargetName(target))),
                         lines.mid(0, 20).join(QLatin1Char('\n')));
    } catch (const std::exception& e) {
        m_errorPresenter(tr("Export Plan"), tr("The plan could not be exported."), QString::fromStdString(e.what()));
    }
}

QString MainWindow::planKey() const
{
    return m_planPath.isEmpty() ? m_modelPath : m_planPath;
}

void MainWindow::autosavePlan()
{
    if (!m_plan->hasModel() || m_plan->undoStack()->isClean())
        return;
    try {
        writeAutosave(m_plan->plan(), planKey().toStdString());
    } catch (const std::exception& e) {
        statusBar()->showMessage(tr("Autosave failed: %1").arg(QString::fromStdString(e.what())), 8000);
    }
}

bool MainWindow::savePlanTo(const QString& path)
{
    try {
        savePlan(m_plan->plan(), path.toStdString());
    } catch (const std::exception& e) {
        m_errorPresenter(tr("Save Plan"), tr("Cannot save %1").arg(path), QString::fromStdString(e.what()));
        return false;
    }
    discardAutosave(planKey().toStdString());
    m_planPath = QFileInfo(path).absoluteFilePath();
    discardAutosave(planKey().toStdString());
    m_autosaveTimer->stop();
    m_plan->undoStack()->setClean();
    statusBar()->showMessage(tr("Saved plan %1").arg(QDir::toNativeSeparators(path)), 6000);
    return true;
}

void MainWindow::savePlanDialog()
{
    if (!m_plan->hasModel())
        return;
    const QString suggestion = m_planPath.isEmpty() ? QFileInfo(m_modelPath).completeBaseName() + QStringLiteral(".plan.json")
                                                    : m_planPath;
    QString path = QFileDialog::getSaveFileName(this, tr("Save Plan"), QDir(m_lastDir).filePath(suggestion),
                                                tr("Plans (*.json)"));
    if (path.isEmpty())
        return;
    if (QFileInfo(path).suffix().isEmpty())
        path += QStringLiteral(".json");
    savePlanTo(path);
}

void MainWindow::openPlanFile()
{
    if (!m_plan->hasModel())
        return;
    const QString path = QFileDialog::getOpenFileName(this, tr("Open Plan"), m_lastDir, tr("Plans (*.json)"));
    if (path.isEmpty())
        return;
    try {
        Plan plan = loadPlan(path.toStdString());
        std::string why;
        if (!planMatchesModel(plan, m_plan->layout(), &why))
            statusBar()->showMessage(tr("Note: %1").arg(QString::fromStdString(why)), 10000);
        m_plan->setPlan(plan, tr("Open plan %1").arg(QFileInfo(path).fileName()));
    } catch (const std::exception& e) {
        m_errorPresenter(tr("Open Plan"), tr("Cannot open %1").arg(path), QString::fromStdString(e.what()));
    }
}

void MainWindow::createActions()
{
    auto* fileMenu = menuBar()->addMenu(tr("&File"));
    auto* openAction = fileMenu->addAction(themedIcon("document-open", ":/icons/open.svg"), tr("&Open…"), this,
                                           &MainWindow::openFileDialog);
    openAction->setShortcut(QKeySequence::Open);
    openAction->setToolTip(tr("Open a model file (safetensors, index.json, GGUF, HDF5, config.json)"));
    auto* openFolderAction = fileMenu->addAction(themedIcon("folder-open", ":/icons/folder.svg"),
                                                 tr("Open &Folder…"), this, &MainWindow::openFolderDialog);
    openFolderAction->setShortcut(QKeySequence(tr("Ctrl+Shift+O")));
    openFolderAction->setToolTip(tr("Open a Hugging Face model folder (sharded safetensors)"));
    auto* sampleAction = fileMenu->addAction(QIcon(QStringLiteral(":/icons/sample.svg")), tr("Open &Sample Model"),
                                             this, [this] {
                                                 const QString sample = samplePath();
                                                 if (sample.isEmpty())
                                                     m_errorPresenter(tr("Sample model"),
                                                                      tr("The bundled sample model was not found."), {});
                                                 else
                                                     openPath(sample);
                                             });
    sampleAction->setToolTip(tr("Open the bundled stories260K sample model"));
    m_recentMenu = fileMenu->addMenu(themedIcon("document-open-recent", ":/icons/open.svg"), tr("Open &Recent"));
    m_recentMenu->setObjectName(QStringLiteral("recentMenu"));
    fileMenu->addSeparator();
    auto* quitAction = fileMenu->addAction(tr("&Quit"), this, &QWidget::close);
    quitAction->setShortcut(QKeySequence::Quit);

    auto* editMenu = menuBar()->addMenu(tr("&Edit"));
    for (QAction* a : findChildren<QAction*>())
        if (a->objectName() == QLatin1String("undoAction") || a->objectName() == QLatin1String("redoAction"))
            editMenu->addAction(a);

    m_viewMenu = menuBar()->addMenu(tr("&View"));
    auto* expandAction = m_viewMenu->addAction(QIcon(QStringLiteral(":/icons/expand.svg")), tr("&Expand All"),
                                               m_tensorView, &QTreeView::expandAll);
    auto* collapseAction = m_viewMenu->addAction(QIcon(QStringLiteral(":/icons/collapse.svg")),
                                                 tr("&Collapse All"), m_tensorView, &QTreeView::collapseAll);
    auto* filterAction = m_viewMenu->addAction(tr("&Filter Tensors"), this, [this] {
        showView(QStringLiteral("tensors"));
        m_filterEdit->setFocus();
        m_filterEdit->selectAll();
    });
    filterAction->setShortcut(QKeySequence::Find);
    m_viewMenu->addSeparator();
    for (auto* dock : findChildren<QDockWidget*>())
        m_viewMenu->addAction(dock->toggleViewAction());

    auto* analysisMenu = menuBar()->addMenu(tr("&Analysis"));
    m_analyzeAction = analysisMenu->addAction(QIcon(QStringLiteral(":/icons/analyze.svg")), tr("&Analyse Model"), this,
                                              &MainWindow::analyzeModel);
    m_analyzeAction->setShortcut(QKeySequence(tr("Ctrl+R")));
    m_analyzeAction->setToolTip(tr("Compute the statistics of every tensor (in the background, cached)"));
    m_analyzeAction->setEnabled(false);
    m_cancelAnalysisAction = analysisMenu->addAction(themedIcon("process-stop", ":/icons/cancel.svg"),
                                                     tr("&Cancel Analysis"), this, &MainWindow::cancelAnalysis);
    m_cancelAnalysisAction->setEnabled(false);
    m_sensitivityAction = analysisMenu->addAction(tr("Compute &Sensitivity Matrix"), this, [this] {
        showView(QStringLiteral("sensitivity"));
        computeSensitivity();
    });
    m_sensitivityAction->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_R));
    analysisMenu->addAction(tr("Cancel Sensitivity Matrix"), this, &MainWindow::cancelSensitivity);
    analysisMenu->addSeparator();
    analysisMenu->addAction(QIcon(QStringLiteral(":/icons/export.svg")), tr("Export Statistics as &CSV…"),
                            m_statsView, &StatsTableView::exportCsvDialog);
    analysisMenu->addAction(tr("Export &Histogram…"), m_histogram, &HistogramView::exportPlot);
    analysisMenu->addAction(tr("Export C&hannel Plot…"), m_channels, &ChannelView::exportPlot);
    analysisMenu->addAction(tr("Export &Depth Chart…"), m_depth, &DepthView::exportPlot);

    auto* helpMenu = menuBar()->addMenu(tr("&Help"));
    helpMenu->addAction(tr("&About Quantscope"), this, &MainWindow::showAbout);
    helpMenu->addAction(tr("About &Qt"), qApp, &QApplication::aboutQt);

    auto* toolBar = addToolBar(tr("Main"));
    toolBar->setObjectName(QStringLiteral("mainToolBar"));
    toolBar->setToolButtonStyle(Qt::ToolButtonTextBesideIcon);
    toolBar->setIconSize(QSize(20, 20));
    toolBar->addAction(openAction);
    toolBar->addAction(openFolderAction);
    toolBar->addAction(sampleAction);
    toolBar->addSeparator();
    toolBar->addAction(expandAction);
    toolBar->addAction(collapseAction);
    toolBar->addSeparator();
    toolBar->addAction(m_analyzeAction);
}

void MainWindow::createStatusBar()
{
    m_modelLabel = new QLabel(this);
    m_progressBar = new QProgressBar(this);
    m_progressBar->setRange(0, 1000);
    m_progressBar->setMaximumWidth(220);
    m_progressBar->setTextVisible(true);
    m_progressBar->hide();
    m_cancelButton = new QToolButton(this);
    m_cancelButton->setObjectName(QStringLiteral("cancelLoadButton"));
    m_cancelButton->setIcon(themedIcon("process-stop", ":/icons/cancel.svg"));
    m_cancelButton->setText(tr("Cancel"));
    m_cancelButton->setToolTip(tr("Cancel loading"));
    m_cancelButton->setToolButtonStyle(Qt::ToolButtonTextBesideIcon);
    m_cancelButton->setAutoRaise(true);
    m_cancelButton->hide();
    connect(m_cancelButton, &QToolButton::clicked, m_loader, &ModelLoader::cancel);
    m_analysisBar = new QProgressBar(this);
    m_analysisBar->setRange(0, 1000);
    m_analysisBar->setMaximumWidth(220);
    m_analysisBar->setFormat(tr("Analysing %p%"));
    m_analysisBar->hide();
    m_analysisCancel = new QToolButton(this);
    m_analysisCancel->setObjectName(QStringLiteral("cancelAnalysisButton"));
    m_analysisCancel->setIcon(themedIcon("process-stop", ":/icons/cancel.svg"));
    m_analysisCancel->setToolTip(tr("Cancel the analysis"));
    m_analysisCancel->setAutoRaise(true);
    m_analysisCancel->hide();
    connect(m_analysisCancel, &QToolButton::clicked, this, &MainWindow::cancelAnalysis);
    statusBar()->addPermanentWidget(m_progressBar);
    statusBar()->addPermanentWidget(m_cancelButton);
    statusBar()->addPermanentWidget(m_analysisBar);
    statusBar()->addPermanentWidget(m_analysisCancel);
    m_sensitivityBar = new QProgressBar(this);
    m_sensitivityBar->setRange(0, 1000);
    m_sensitivityBar->setMaximumWidth(220);
    m_sensitivityBar->setFormat(tr("Sensitivity %p%"));
    m_sensitivityBar->hide();
    m_sensitivityCancel = new QToolButton(this);
    m_sensitivityCancel->setObjectName(QStringLiteral("cancelSensitivityButton"));
    m_sensitivityCancel->setIcon(themedIcon("process-stop", ":/icons/cancel.svg"));
    m_sensitivityCancel->setToolTip(tr("Cancel the sensitivity matrix"));
    m_sensitivityCancel->setAutoRaise(true);
    m_sensitivityCancel->hide();
    connect(m_sensitivityCancel, &QToolButton::clicked, this, &MainWindow::cancelSensitivity);
    statusBar()->addPermanentWidget(m_sensitivityBar);
    statusBar()->addPermanentWidget(m_sensitivityCancel);
    statusBar()->addPermanentWidget(m_modelLabel);
    statusBar()->showMessage(tr("Ready. Open a model or drop one on the window."));
}

QString MainWindow::samplePath()
{
    const QString relative = QStringLiteral("/stories260K/stories260K.gguf");
    const QStringList candidates = {
        QStringLiteral(QS_SAMPLE_SOURCE_DIR) + relative,
        QStringLiteral(QS_SAMPLE_INSTALL_DIR) + relative,
        QCoreApplication::applicationDirPath() + QStringLiteral("/../share/quantscope/samples") + relative,
    };
    for (const QString& c : candidates)
        if (QFileInfo::exists(c))
            return QDir::cleanPath(c);
    return {};
}

void MainWindow::openPath(const QString& path)
{
    if (path.isEmpty())
        return;
    const QString absolute = QFileInfo(path).absoluteFilePath();
    m_loader->load(absolute);
}

bool MainWindow::isLoading() const
{
    return m_loader->isRunning();
}

QStringList MainWindow::recentFiles() const
{
    return m_recent;
}

QStringList MainWindow::viewNames() const
{
    QStringList names;
    for (int i = 0; i < m_views->count(); ++i)
        names << m_views->widget(i)->objectName().mid(5);
    return names;
}

bool MainWindow::showView(const QString& name)
{
    for (int i = 0; i < m_views->count(); ++i) {
        if (m_views->widget(i)->objectName() == QLatin1String("view:") + name) {
            m_views->setCurrentIndex(i);
            return true;
        }
    }
    return false;
}

void MainWindow::openFileDialog()
{
    const QString filter = modelFileFilter();
    const QString path = QFileDialog::getOpenFileName(this, tr("Open Model"), m_lastDir, filter);
    if (!path.isEmpty()) {
        m_lastDir = QFileInfo(path).absolutePath();
        openPath(path);
    }
}

void MainWindow::openFolderDialog()
{
    const QString path = QFileDialog::getExistingDirectory(this, tr("Open Model Folder"), m_lastDir);
    if (!path.isEmpty()) {
        m_lastDir = QFileInfo(path).absolutePath();
        openPath(path);
    }
}

void MainWindow::onLoadStarted(const QString& path)
{
    statusBar()->showMessage(tr("Opening %1…").arg(QDir::toNativeSeparators(path)));
    m_progressBar->setRange(0, 0); // busy until the loader reports a fraction
    m_progressBar->show();
    m_cancelButton->show();
}

void MainWindow::onLoadProgress(double fraction, const QString& stage)
{
    if (fraction > 0.0) {
        m_progressBar->setRange(0, 1000);
        m_progressBar->setValue(int(fraction * 1000.0));
    }
    if (!stage.isEmpty())
        m_progressBar->setFormat(stage + QStringLiteral(" %p%"));
}

void MainWindow::finishLoadingUi()
{
    m_progressBar->hide();
    m_progressBar->setFormat(QStringLiteral("%p%"));
    m_cancelButton->hide();
}

void MainWindow::onLoaded(const QString& path, std::shared_ptr<Model> model)
{
    finishLoadingUi();
    // config.json alone: plan before downloading. The tensors the checkpoint would have are derived from
    // the architecture and shown (without data: no analysis).
    ModelLayout layout;
    if (model->format() == ModelFormat::ConfigOnly) {
        try {
            layout = openLayout(path.toStdString());
            auto derived = std::make_shared<Model>(ModelFormat::ConfigOnly, model->path());
            for (const TensorInfo& t : layout.tensors)
                derived->addTensor(t);
            derived->mutableConfig() = layout.config;
            derived->mutableMetadata() = model->metadata();
            derived->finalize();
            model = std::move(derived);
        } catch (const std::exception& e) {
            statusBar()->showMessage(tr("No tensors derived from %1: %2")
                                         .arg(QFileInfo(path).fileName(), QString::fromStdString(e.what())),
                                     10000);
        }
    } else {
        layout = layoutFromModel(*model);
    }
    m_model = std::move(model);
    m_modelPath = path;
    m_selectedNames.clear();
    m_selectedGroups.clear();
    m_treeModel->setModel(m_model);
    m_summary->setModel(m_model);
    m_stats->setModel(m_model);
    m_histogram->setModel(m_model);
    m_sensitivity->setModel(m_model);
    m_footprint->setErrorTable({}); // measurements belong to the previous model
    m_sensitivityView->setTensors(m_sensitivity->tensors());
    m_sensitivityView->setMessage(
        m_model->format() == ModelFormat::ConfigOnly
            ? tr("Opened from config.json alone: there are no weights to measure.")
            : tr("Press Compute to quantize every weight matrix to each format and measure the error."));
    m_plan->setLayout(std::move(layout));
    m_planPath.clear();
    if (const auto autosave = newerAutosave(planKey().toStdString())) {
        const QString autosavePath = QString::fromStdString(autosave->string());
        const QString key = planKey();
        m_restorePrompt(autosavePath, [this, autosavePath, key](bool restore) {
            if (key != planKey())
                return; // another model was opened meanwhile
            if (!restore) {
                discardAutosave(key.toStdString());
                return;
            }
            try {
                m_plan->setPlan(loadPlan(autosavePath.toStdString()), tr("Restore autosaved plan"));
            } catch (const std::exception& e) {
                m_errorPresenter(tr("Restore Plan"), tr("The autosaved plan could not be read."),
                                 QString::fromStdString(e.what()));
            }
        });
    }
    m_analyzeAction->setEnabled(m_model->format() != ModelFormat::ConfigOnly);
    updateAnalysisViews();

    if (m_model->tensors().size() <= size_t(expandAllLimit)) {
        m_tensorView->expandAll();
    } else {
        m_tensorView->collapseAll();
        for (int row = 0; row < qMin(2, m_proxy->rowCount()); ++row)
            m_tensorView->expand(m_proxy->index(row, 0));
    }
    for (int c = TensorTreeModel::RoleColumn; c < TensorTreeModel::ColumnCount; ++c) {
        m_tensorView->resizeColumnToContents(c);
        m_tensorView->setColumnWidth(c, m_tensorView->columnWidth(c) + 16);
    }

    addRecentFile(path);
    updateTitle();
    m_modelLabel->setText(tr("%1 · %2 parameters · %3")
                              .arg(QString::fromLatin1(modelFormatName(m_model->format())),
                                   formatCount(m_model->parameterCount()), formatBytes(m_model->totalBytes())));
    statusBar()->showMessage(tr("Opened %1 (%2)")
                                 .arg(QDir::toNativeSeparators(path),
                                      countNoun(m_model->tensors().size(), "tensor", "tensors")),
                             8000);
    // Open on something to look at: the first quantizable weight of the first block (else the largest).
    if (!m_model->tensors().empty()) {
        const auto& tensors = m_model->tensors();
        size_t pick = 0;
        bool found = false;
        for (size_t i = 0; i < tensors.size() && !found; ++i)
            if (tensors[i].role.block >= 0 && roleIsQuantizable(tensors[i].role.role)) {
                pick = i;
                found = true;
            }
        if (!found)
            for (size_t i = 1; i < tensors.size(); ++i)
                if (tensors[i].bytes > tensors[pick].bytes)
                    pick = i;
        selectTensors({QString::fromStdString(tensors[pick].name)});
    }
    emit modelLoaded(path);
    if (m_model->format() != ModelFormat::ConfigOnly &&
        QSettings().value(QStringLiteral("analysis/automatic"), true).toBool())
        analyzeModel();
}

void MainWindow::onLoadFailed(const QString& path, const QString& message, const QString& kind)
{
    finishLoadingUi();
    statusBar()->showMessage(tr("Could not open %1").arg(QFileInfo(path).fileName()), 8000);
    if (!QFileInfo::exists(path))
        removeRecentFile(path);
    QString detail = message;
    if (!kind.isEmpty())
        detail += QStringLiteral("\n\n") + tr("Error kind: %1").arg(kind);
    if (m_model)
        detail += QStringLiteral("\n") + tr("The previously opened model stays open.");
    m_errorPresenter(tr("Cannot Open Model"), tr("Quantscope could not open <b>%1</b>.").arg(path.toHtmlEscaped()),
                     detail);
    emit loadFailed(path, message);
}

void MainWindow::onLoadCancelled(const QString& path)
{
    finishLoadingUi();
    statusBar()->showMessage(tr("Loading of %1 cancelled").arg(QFileInfo(path).fileName()), 5000);
    emit loadCancelled(path);
}

void MainWindow::addRecentFile(const QString& path)
{
    m_recent.removeAll(path);
    m_recent.prepend(path);
    while (m_recent.size() > maxRecentFiles)
        m_recent.removeLast();
    rebuildRecentMenu();
    writeSettings();
}

void MainWindow::removeRecentFile(const QString& path)
{
    if (m_recent.removeAll(path) > 0) {
        rebuildRecentMenu();
        writeSettings();
    }
}

void MainWindow::rebuildRecentMenu()
{
    m_recentMenu->clear();
    int n = 0;
    for (const QString& path : std::as_const(m_recent)) {
        ++n;
        const QFileInfo info(path);
        const QString label = n < 10 ? QStringLiteral("&%1  %2").arg(n).arg(info.fileName())
                                     : QStringLiteral("%1  %2").arg(n).arg(info.fileName());
        auto* action = m_recentMenu->addAction(label, this, [this, path] { openPath(path); });
        action->setToolTip(QDir::toNativeSeparators(path));
        action->setStatusTip(QDir::toNativeSeparators(path));
        action->setData(path);
    }
    if (m_recent.isEmpty()) {
        m_recentMenu->addAction(tr("No recent models"))->setEnabled(false);
    } else {
        m_recentMenu->addSeparator();
        m_recentMenu->addAction(tr("&Clear Recent Models"), this, [this] {
            m_recent.clear();
            rebuildRecentMenu();
            writeSettings();
        });
    }
}

void MainWindow::applyFilter(const QString& text)
{
    const bool valid = m_proxy->setFilterPattern(text);
    m_filterEdit->setToolTip(valid ? QString() : tr("Not a valid regular expression: matched literally"));
    if (!text.isEmpty())
        m_tensorView->expandAll();
}

void MainWindow::updateTitle()
{
    if (m_modelPath.isEmpty())
        setWindowTitle(tr("Quantscope"));
    else
        setWindowTitle(tr("%1 — Quantscope").arg(QFileInfo(m_modelPath).fileName()));
}

void MainWindow::showAbout()
{
    QMessageBox::about(this, tr("About Quantscope"),
                       tr("<h3>Quantscope %1</h3><p>A workbench for analysing and quantizing neural-network "
                          "weights: safetensors, GGUF and HDF5.</p>")
                           .arg(QCoreApplication::applicationVersion()));
}

void MainWindow::readSettings()
{
    QSettings settings;
    if (!restoreGeometry(settings.value(QStringLiteral("window/geometry")).toByteArray()))
        resize(1400, 860);
    restoreState(settings.value(QStringLiteral("window/state")).toByteArray());
    m_recent = settings.value(QStringLiteral("recentFiles")).toStringList();
    m_lastDir = settings.value(QStringLiteral("lastDirectory")).toString();
    rebuildRecentMenu();
}

void MainWindow::writeSettings() const
{
    QSettings settings;
    settings.setValue(QStringLiteral("window/geometry"), saveGeometry());
    settings.setValue(QStringLiteral("window/state"), saveState());
    settings.setValue(QStringLiteral("recentFiles"), m_recent);
    settings.setValue(QStringLiteral("lastDirectory"), m_lastDir);
}

void MainWindow::closeEvent(QCloseEvent* event)
{
    m_loader->cancel();
    m_stats->cancel();
    m_views->setCurrentIndex(0); // brings back docks the plan view hid, so the saved layout has them
    writeSettings();
    event->accept();
}

void MainWindow::dragEnterEvent(QDragEnterEvent* event)
{
    if (!pathForDrop(event->mimeData()).isEmpty())
        event->acceptProposedAction();
}

void MainWindow::dropEvent(QDropEvent* event)
{
    const QString path = pathForDrop(event->mimeData());
    if (path.isEmpty())
        return;
    event->acceptProposedAction();
    openPath(path);
}

void MainWindow::analyzeModel()
{
    if (!m_model || m_stats->isRunning() || m_model->format() == ModelFormat::ConfigOnly)
        return;
    m_analysisBar->setValue(0);
    m_analysisBar->show();
    m_analysisCancel->show();
    m_cancelAnalysisAction->setEnabled(true);
    m_analyzeAction->setEnabled(false);
    m_stats->analyze();
    if (!m_stats->isRunning()) // nothing left to analyse
        onAnalysisFinished(false, {});
    updateAnalysisViews();
}

void MainWindow::cancelAnalysis()
{
    m_stats->cancel();
}

bool MainWindow::isAnalyzing() const
{
    return m_stats->isRunning();
}

void MainWindow::onAnalysisProgress(double fraction, const QString&)
{
    m_analysisBar->setValue(int(fraction * 1000.0));
}

void MainWindow::onAnalysisFinished(bool cancelled, const QString& error)
{
    m_analysisBar->hide();
    m_analysisCancel->hide();
    m_cancelAnalysisAction->setEnabled(false);
    m_analyzeAction->setEnabled(m_model != nullptr);
    size_t failed = 0;
    if (m_model)
        for (size_t i = 0; i < m_model->tensors().size(); ++i)
            if (const TensorStats* s = m_stats->stats(i); s && !s->error.empty())
                ++failed;
    if (!error.isEmpty())
        statusBar()->showMessage(tr("Analysis failed: %1").arg(error), 10000);
    else if (cancelled)
        statusBar()->showMessage(tr("Analysis cancelled after %1").arg(countNoun(m_stats->doneCount(), "tensor", "tensors")),
                                 8000);
    else
        statusBar()->showMessage(
            failed ? tr("Analysis done: %1 could not be decoded").arg(countNoun(failed, "tensor", "tensors"))
                   : tr("Analysis done: %1").arg(countNoun(m_stats->doneCount(), "tensor", "tensors")),
            8000);
    updateAnalysisViews();
    emit analysisFinished(cancelled);
}

void MainWindow::onTreeSelectionChanged()
{
    if (m_syncingSelection)
        return;
    m_selectedNames.clear();
    m_selectedGroups.clear();
    for (const QModelIndex& idx : m_tensorView->selectionModel()->selectedRows()) {
        const QString name = idx.data(TensorTreeModel::TensorNameRole).toString();
        if (!name.isEmpty()) {
            m_selectedNames << name;
            continue;
        }
        QStringList members;
        const QModelIndex source = m_proxy->mapToSource(idx);
        for (int r = 0; r < m_treeModel->rowCount(source); ++r)
            members << m_treeModel->index(r, 0, source).data(TensorTreeModel::TensorNameRole).toString();
        m_selectedGroups.emplace_back(idx.data().toString(), members);
    }
    if (m_selectedNames.size() == 1) {
        m_syncingSelection = true;
        m_statsView->selectTensor(m_selectedNames.front());
        m_tierBoard->selectTensor(m_selectedNames.front());
        m_syncingSelection = false;
    }
    updateAnalysisViews();
}

void MainWindow::selectTensors(const QStringList& names)
{
    m_syncingSelection = true;
    QItemSelection selection;
    QModelIndex first;
    for (const QString& name : names) {
        const QModelIndex idx = m_proxy->mapFromSource(m_treeModel->indexForTensor(name));
        if (!idx.isValid())
            continue;
        if (!first.isValid())
            first = idx;
        m_tensorView->expand(idx.parent());
        selection.select(idx, idx);
    }
    m_tensorView->selectionModel()->select(selection, QItemSelectionModel::ClearAndSelect | QItemSelectionModel::Rows);
    if (first.isValid()) {
        m_tensorView->selectionModel()->setCurrentIndex(first, QItemSelectionModel::NoUpdate);
        m_tensorView->scrollTo(first);
    }
    if (names.size() == 1) {
        m_statsView->selectTensor(names.front());
        m_tierBoard->selectTensor(names.front());
    }
    m_syncingSelection = false;
    m_selectedNames = names;
    m_selectedGroups.clear();
    updateAnalysisViews();
}

int MainWindow::selectTensorsMatching(const QString& pattern)
{
    if (!m_model)
        return 0;
    const QRegularExpression re(pattern);
    QStringList names;
    for (const auto& t : m_model->tensors()) {
        const QString name = QString::fromStdString(t.name);
        if (re.match(name).hasMatch())
            names << name;
    }
    selectTensors(names);
    return int(names.size());
}

void MainWindow::createSensitivityView()
{
    m_sensitivity = new SensitivityStore(this);
    m_sensitivityView = new SensitivityView;
    m_sensitivityView->setObjectName(QStringLiteral("view:sensitivity"));
    m_sensitivityView->setStore(m_sensitivity); // the only copy of the cells; also its tensors and formats
    m_sensitivityView->setMessage(tr("Open a model, then press Compute to measure how each weight matrix "
                                     "survives each format."));
    m_views->addTab(m_sensitivityView, tr("Sensitivity"));
    connect(m_sensitivityView, &SensitivityView::computeRequested, this, &MainWindow::computeSensitivity);
    connect(m_sensitivityView, &SensitivityView::cancelRequested, this, &MainWindow::cancelSensitivity);
    connect(m_sensitivityView, &SensitivityView::cellClicked, this,
            [this](const QString& tensor, const QString& format) {
                m_histogram->setGridFormat(format);
                m_sensitivityView->setBarFormat(format);
                selectTensors({tensor});
            });
    connect(m_sensitivity, &SensitivityStore::resultsReady, m_sensitivityView, &SensitivityView::addResults);
    connect(m_sensitivity, &SensitivityStore::progressChanged, this,
            [this](double fraction, const QString&) { m_sensitivityBar->setValue(int(fraction * 1000.0)); });
    connect(m_sensitivity, &SensitivityStore::finished, this, &MainWindow::onSensitivityFinished);
}

void MainWindow::computeSensitivity()
{
    if (!m_model || m_sensitivity->isRunning() || m_model->format() == ModelFormat::ConfigOnly)
        return;
    m_sensitivityView->setTensors(m_sensitivity->tensors());
    m_sensitivityView->setMessage(tr("Computing… cells appear as each tensor is done."));
    m_sensitivity->setModel(m_model); // recomputes from scratch (cached cells come back at once)
    m_sensitivityBar->setValue(0);
    m_sensitivityBar->show();
    m_sensitivityCancel->show();
    m_sensitivityView->setRunning(true);
    m_sensitivity->compute();
}

void MainWindow::cancelSensitivity()
{
    m_sensitivity->cancel();
}

bool MainWindow::isComputingSensitivity() const
{
    return m_sensitivity->isRunning();
}

void MainWindow::onSensitivityFinished(bool cancelled, const QString& error)
{
    m_sensitivityBar->hide();
    m_sensitivityCancel->hide();
    m_sensitivityView->setRunning(false);
    if (!error.isEmpty()) {
        m_sensitivityView->setMessage(tr("Sensitivity failed: %1").arg(error));
        statusBar()->showMessage(tr("Sensitivity failed: %1").arg(error), 10000);
    } else if (cancelled) {
        m_sensitivityView->setMessage(
            tr("Cancelled. Press Compute to start again (finished tensors are cached)."));
        statusBar()->showMessage(tr("Sensitivity matrix cancelled"), 5000);
    } else {
        m_footprint->setErrorTable(errorTableFromSensitivity(m_sensitivity->results()));
        const QString cells = countNoun(m_sensitivity->resultCount(), "cell", "cells");
        statusBar()->showMessage(tr("Sensitivity matrix done: %1").arg(cells), 5000);
    }
    emit sensitivityFinished(cancelled);
}

void MainWindow::updateAnalysisViews()
{
    m_depth->setHighlighted(m_selectedNames);
    m_sensitivityView->setHighlighted(m_selectedNames);
    if (!m_model) {
        m_histogram->setMessage(tr("Open a model to see the value distributions of its tensors."));
        m_channels->setMessage(tr("Open a model to see per-channel statistics."));
        return;
    }
    const QString waiting =
        m_model->format() == ModelFormat::ConfigOnly
            ? tr("Opened from config.json alone: there are no weights to analyse (planning works).")
        : m_stats->isRunning() ? tr("Analysing… statistics appear as soon as this tensor is done.")
                             : tr("No statistics yet: run Analysis › Analyse Model (Ctrl+R).");
    std::vector<HistogramView::Series> series;
    QStringList pending;
    QStringList failures;
    for (const auto& [title, members] : m_selectedGroups) {
        std::vector<std::shared_ptr<const TensorStats>> parts;
        std::vector<const TensorStats*> raw;
        bool complete = true;
        for (const QString& name : members) {
            const int index = m_stats->tensorIndex(name);
            auto s = index >= 0 ? m_stats->shared(size_t(index)) : nullptr;
            if (!s) {
                complete = false;
                break;
            }
            if (s->error.empty() && s->finite > 0) {
                raw.push_back(s.get());
                parts.push_back(std::move(s));
            }
        }
        if (!complete) {
            pending << title;
            continue;
        }
        if (raw.empty())
            continue;
        auto merged = std::make_shared<TensorStats>(mergeStats(raw));
        series.push_back({tr("%1 (%2 merged)").arg(title, countNoun(raw.size(), "tensor", "tensors")), merged, -1});
    }
    for (const QString& name : m_selectedNames) {
        if (series.size() >= size_t(maxOverlaySeries))
            break;
        const int index = m_stats->tensorIndex(name);
        auto s = index >= 0 ? m_stats->shared(size_t(index)) : nullptr;
        if (!s)
            pending << name;
        else if (!s->error.empty())
            failures << QStringLiteral("%1: %2").arg(name, QString::fromStdString(s->error));
        else
            series.push_back({name, s, index});
    }
    if (series.empty()) {
        if (m_selectedNames.isEmpty() && m_selectedGroups.empty())
            m_histogram->setMessage(tr("Select one or more tensors — or a whole group such as a block — in the "
                                       "tree, the statistics table or the depth overview."));
        else if (!failures.isEmpty())
            m_histogram->setMessage(failures.join(QLatin1Char('\n')));
        else
            m_histogram->setMessage(waiting);
    } else {
        m_histogram->setSeries(std::move(series));
    }

    // The channel view follows the first selected tensor.
    if (m_selectedNames.isEmpty()) {
        m_channels->setMessage(tr("Select a tensor to see its per-channel absmax and standard deviation."));
    } else {
        const QString& name = m_selectedNames.front();
        const int index = m_stats->tensorIndex(name);
        auto s = index >= 0 ? m_stats->shared(size_t(index)) : nullptr;
        if (!s)
            m_channels->setMessage(waiting);
        else if (!s->error.empty())
            m_channels->setMessage(QString::fromStdString(s->error));
        else
            m_channels->setTensor(name, s);
    }
}


} // namespace qs
