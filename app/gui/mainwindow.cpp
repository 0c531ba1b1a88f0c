#include "app/gui/mainwindow.h"

#include "app/gui/analysiscontrol.h"
#include "app/gui/analysispresenter.h"
#include "app/gui/budgetdialog.h"
#include "app/gui/modelloader.h"
#include "app/gui/openactions.h"
#include "app/gui/planpage.h"
#include "app/gui/plansession.h"
#include "app/gui/recentfiles.h"
#include "app/gui/statusprogress.h"
#include "core/plan/budget.h"
#include "core/plan/planningmodel.h"
#include "core/stats/stats.h"
#include "widgets/channelview.h"
#include "widgets/depthview.h"
#include "widgets/footprintpanel.h"
#include "widgets/formatting.h"
#include "widgets/histogramview.h"
#include "widgets/jobarea.h"
#include "widgets/jobrunner.h"
#include "widgets/modelsummary.h"
#include "widgets/plandocument.h"
#include "widgets/selectionhub.h"
#include "widgets/sensitivitystore.h"
#include "widgets/sensitivityview.h"
#include "widgets/statsstore.h"
#include "widgets/statstablemodel.h"
#include "widgets/statstableview.h"
#include "widgets/tensorfilterproxy.h"
#include "widgets/tensortreemodel.h"
#include "widgets/tierboardview.h"

#include <QAction>
#include <QApplication>
#include <QCloseEvent>
#include <QDir>
#include <QDockWidget>
#include <QFileDialog>
#include <QFileInfo>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QMenuBar>
#include <QMessageBox>
#include <QMimeData>
#include <QRegularExpression>
#include <QSettings>
#include <QStatusBar>
#include <QTabWidget>
#include <QToolBar>
#include <QTreeView>
#include <QVBoxLayout>

// The resources live in the static quantscope_app library: without a reference, the linker drops them.
static void initResources()
{
    Q_INIT_RESOURCE(resources);
}

namespace qs {

namespace {

constexpr int expandAllLimit = 80; // tensors; larger models open with only the first groups expanded

QIcon themedIcon(const char* themeName, const char* resource)
{
    return QIcon::fromTheme(QLatin1String(themeName), QIcon(QLatin1String(resource)));
}

} // namespace

MainWindow::MainWindow(QWidget* parent)
    : QMainWindow(parent), m_loader(new ModelLoader(this)), m_runner(new JobRunner(this)),
      m_selection(new SelectionHub(this)), m_stats(new StatsStore(this)),
      m_sensitivity(new SensitivityStore(this))
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
    // Forwards to whatever presenter is set when the error happens (tests replace it after construction).
    auto presentError = [this](const QString& title, const QString& text, const QString& detail) {
        m_errorPresenter(title, text, detail);
    };
    m_session = new PlanSession(presentError, this);
    connect(m_session, &PlanSession::message, this, &MainWindow::showMessage);

    createViews();
    // The presenter first: the plots are up to date when the control reports the end of a run.
    m_presenter = new AnalysisPresenter(m_stats, m_selection, m_histogram, m_channels, this);
    m_analysis = new AnalysisControl(m_stats, m_sensitivity, m_sensitivityView, footprintPanel(), this);
    connect(m_analysis, &AnalysisControl::message, this, &MainWindow::showMessage);
    connect(m_analysis, &AnalysisControl::analysisStarted, this, [this] {
        m_cancelAnalysisAction->setEnabled(true);
        m_analyzeAction->setEnabled(false);
    });
    connect(m_analysis, &AnalysisControl::analysisFinished, this, [this](bool cancelled) {
        m_cancelAnalysisAction->setEnabled(false);
        m_analyzeAction->setEnabled(m_model != nullptr);
        emit analysisFinished(cancelled);
    });
    connect(m_analysis, &AnalysisControl::sensitivityFinished, this, &MainWindow::sensitivityFinished);

    createActions();
    createStatusBar();

    // The tree and the table show each tensor's planned format and follow every plan edit.
    auto formatOf = [plan = planDocument()](const std::string& name) {
        const auto f = plan->plan().formatOf(name);
        return f ? QString::fromStdString(*f) : QString();
    };
    m_treeModel->setFormatLookup(formatOf);
    m_statsView->tableModel()->setFormatLookup(formatOf);
    connect(planDocument(), &PlanDocument::planChanged, this, [this] {
        m_treeModel->planChanged();
        m_statsView->tableModel()->planChanged();
    });

    connect(m_loader, &ModelLoader::started, this, [this](const QString& path) {
        showMessage(tr("Opening %1…").arg(QDir::toNativeSeparators(path)), 0);
    });
    connect(m_loader, &ModelLoader::loaded, this, &MainWindow::onLoaded);
    connect(m_loader, &ModelLoader::failed, this, &MainWindow::onLoadFailed);
    connect(m_loader, &ModelLoader::cancelled, this, [this](const QString& path) {
        showMessage(tr("Loading of %1 cancelled").arg(QFileInfo(path).fileName()), 5000);
        emit loadCancelled(path);
    });

    readSettings();
    updateTitle();
    m_presenter->refresh();
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
    m_runner->cancelAll();
}

void MainWindow::createViews()
{
    m_views = new QTabWidget(this);
    m_views->setDocumentMode(true);
    m_views->addTab(createTensorsPage(), tr("Tensors"));
    m_statsView = new StatsTableView(m_stats);
    m_statsView->setObjectName(QStringLiteral("view:statistics"));
    m_views->addTab(m_statsView, tr("Statistics"));
    m_depth = new DepthView(m_stats);
    m_depth->setObjectName(QStringLiteral("view:depth"));
    m_views->addTab(m_depth, tr("Depth Overview"));
    m_planPage = new PlanPage(m_session, [this](const QString& t, const QString& x, const QString& d) {
        m_errorPresenter(t, x, d);
    });
    connect(m_planPage, &PlanPage::fitToBudgetRequested, this, &MainWindow::fitPlanToBudget);
    m_views->addTab(m_planPage, tr("Plan"));
    createSensitivityView();
    setCentralWidget(m_views);
    createDocks();

    m_selection->attachTree(m_tensorView, m_treeModel, m_proxy);
    m_selection->attachStatsTable(m_statsView);
    m_selection->attachDepth(m_depth);
    m_selection->attachTierBoard(m_planPage->tierBoard());
    m_selection->attachSensitivity(m_sensitivityView);
}

QWidget* MainWindow::createTensorsPage()
{
    m_treeModel = new TensorTreeModel(this);
    m_proxy = new TensorFilterProxy(this);
    m_proxy->setSourceModel(m_treeModel);
    auto* page = new QWidget;
    page->setObjectName(QStringLiteral("view:tensors"));
    auto* layout = new QVBoxLayout(page);
    layout->setContentsMargins(4, 4, 4, 4);
    m_filterEdit = new QLineEdit(page);
    m_filterEdit->setPlaceholderText(
        tr("Filter tensors by name or role (regular expression, e.g. ffn_down|attn_q)"));
    m_filterEdit->setClearButtonEnabled(true);
    connect(m_filterEdit, &QLineEdit::textChanged, this, &MainWindow::applyFilter);
    layout->addWidget(m_filterEdit);

    m_tensorView = new QTreeView(page);
    m_tensorView->setObjectName(QStringLiteral("tensorTree"));
    m_tensorView->setModel(m_proxy);
    m_tensorView->setSortingEnabled(true);
    m_tensorView->sortByColumn(-1, Qt::AscendingOrder); // file order until the user clicks a header
    m_tensorView->setAlternatingRowColors(true);
    m_tensorView->setUniformRowHeights(true);
    m_tensorView->setSelectionMode(QAbstractItemView::ExtendedSelection);
    m_tensorView->setSelectionBehavior(QAbstractItemView::SelectRows);
    QHeaderView* header = m_tensorView->header();
    header->setStretchLastSection(false);
    header->setSectionResizeMode(QHeaderView::Interactive);
    header->setSectionResizeMode(TensorTreeModel::NameColumn, QHeaderView::Stretch);
    header->setMinimumSectionSize(60);
    header->setSortIndicatorShown(true);
    layout->addWidget(m_tensorView);
    return page;
}

void MainWindow::createDocks()
{
    auto addDock = [this](QWidget* widget, const QString& title, const char* name, Qt::DockWidgetArea area) {
        auto* dock = new QDockWidget(title, this);
        dock->setObjectName(QLatin1String(name));
        dock->setWidget(widget);
        addDockWidget(area, dock);
        return dock;
    };
    m_histogram = new HistogramView(this);
    m_channels = new ChannelView(this);
    m_summary = new ModelSummaryWidget(this);
    QDockWidget* histogram = addDock(m_histogram, tr("Histogram"), "histogramDock", Qt::BottomDockWidgetArea);
    QDockWidget* channels = addDock(m_channels, tr("Channels"), "channelDock", Qt::BottomDockWidgetArea);
    splitDockWidget(histogram, channels, Qt::Horizontal);
    resizeDocks({histogram}, {360}, Qt::Vertical);
    addDock(m_summary, tr("Model"), "summaryDock", Qt::RightDockWidgetArea)->setMinimumWidth(260);

    // The plan needs the room: the docks step aside while it is shown.
    connect(m_views, &QTabWidget::currentChanged, this, [this](int index) {
        const bool plan = m_views->widget(index) == m_planPage;
        for (auto* dock : findChildren<QDockWidget*>()) {
            if (plan) {
                dock->setProperty("shownBeforePlan", dock->isVisible());
                dock->hide();
            } else if (dock->property("shownBeforePlan").toBool()) {
                dock->setProperty("shownBeforePlan", false);
                dock->show();
            }
        }
    });
}

void MainWindow::createSensitivityView()
{
    m_sensitivityView = new SensitivityView;
    m_sensitivityView->setObjectName(QStringLiteral("view:sensitivity"));
    m_views->addTab(m_sensitivityView, tr("Sensitivity"));
    // Before the selection hub's connection, so the histogram shows the grid of the clicked format.
    connect(m_sensitivityView, &SensitivityView::cellClicked, this,
            [this](const QString&, const QString& format) {
                m_histogram->setGridFormat(format);
                m_sensitivityView->setBarFormat(format);
            });
}

void MainWindow::createActions()
{
    auto* fileMenu = menuBar()->addMenu(tr("&File"));
    m_open = new OpenActions(
        fileMenu, [this](const QString& t, const QString& x, const QString& d) { m_errorPresenter(t, x, d); },
        this);
    connect(m_open, &OpenActions::openRequested, this, &MainWindow::openPath);
    connect(m_open, &OpenActions::lastDirectoryChanged, m_session, &PlanSession::setStartDirectory);
    m_session->setStartDirectory(m_open->lastDirectory());
    fileMenu->addSeparator();
    fileMenu->addAction(tr("&Quit"), this, &QWidget::close)->setShortcut(QKeySequence::Quit);

    auto* editMenu = menuBar()->addMenu(tr("&Edit"));
    editMenu->addAction(m_planPage->undoAction());
    editMenu->addAction(m_planPage->redoAction());

    auto* viewMenu = menuBar()->addMenu(tr("&View"));
    auto* expandAction = viewMenu->addAction(QIcon(QStringLiteral(":/icons/expand.svg")), tr("&Expand All"),
                                             m_tensorView, &QTreeView::expandAll);
    auto* collapseAction = viewMenu->addAction(QIcon(QStringLiteral(":/icons/collapse.svg")),
                                               tr("&Collapse All"), m_tensorView, &QTreeView::collapseAll);
    viewMenu
        ->addAction(tr("&Filter Tensors"), this,
                    [this] {
                        showView(QStringLiteral("tensors"));
                        m_filterEdit->setFocus();
                        m_filterEdit->selectAll();
                    })
        ->setShortcut(QKeySequence::Find);
    viewMenu->addSeparator();
    for (auto* dock : findChildren<QDockWidget*>())
        viewMenu->addAction(dock->toggleViewAction());

    auto* analysisMenu = menuBar()->addMenu(tr("&Analysis"));
    m_analyzeAction = analysisMenu->addAction(QIcon(QStringLiteral(":/icons/analyze.svg")),
                                              tr("&Analyse Model"), this, &MainWindow::analyzeModel);
    m_analyzeAction->setShortcut(QKeySequence(tr("Ctrl+R")));
    m_analyzeAction->setToolTip(tr("Compute the statistics of every tensor (in the background, cached)"));
    m_analyzeAction->setEnabled(false);
    m_cancelAnalysisAction =
        analysisMenu->addAction(themedIcon("process-stop", ":/icons/cancel.svg"), tr("&Cancel Analysis"),
                                this, &MainWindow::cancelAnalysis);
    m_cancelAnalysisAction->setEnabled(false);
    analysisMenu
        ->addAction(tr("Compute &Sensitivity Matrix"), this,
                    [this] {
                        showView(QStringLiteral("sensitivity"));
                        computeSensitivity();
                    })
        ->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_R));
    analysisMenu->addAction(tr("Cancel Sensitivity Matrix"), this, &MainWindow::cancelSensitivity);
    analysisMenu->addSeparator();
    analysisMenu->addAction(QIcon(QStringLiteral(":/icons/export.svg")), tr("Export Statistics as &CSV…"),
                            m_statsView, &StatsTableView::exportCsvDialog);
    analysisMenu->addAction(tr("Export &Histogram…"), m_histogram, &HistogramView::exportPlot);
    analysisMenu->addAction(tr("Export C&hannel Plot…"), m_channels, &ChannelView::exportPlot);
    analysisMenu->addAction(tr("Export &Depth Chart…"), m_depth, &DepthView::exportPlot);

    auto* helpMenu = menuBar()->addMenu(tr("&Help"));
    helpMenu->addAction(tr("&About Quantscope"), this, [this] {
        QMessageBox::about(
            this, tr("About Quantscope"),
            tr("<h3>Quantscope %1</h3><p>A workbench for analysing and quantizing neural-network "
               "weights: safetensors, GGUF and HDF5.</p>")
                .arg(QCoreApplication::applicationVersion()));
    });
    helpMenu->addAction(tr("About &Qt"), qApp, &QApplication::aboutQt);

    auto* toolBar = addToolBar(tr("Main"));
    toolBar->setObjectName(QStringLiteral("mainToolBar"));
    toolBar->setToolButtonStyle(Qt::ToolButtonTextBesideIcon);
    toolBar->setIconSize(QSize(20, 20));
    toolBar->addActions(m_open->toolBarActions());
    toolBar->addSeparator();
    toolBar->addActions({expandAction, collapseAction});
    toolBar->addSeparator();
    toolBar->addAction(m_analyzeAction);
}

void MainWindow::createStatusBar()
{
    // Every job started through the runner shows here, with its progress, ETA and cancel button.
    m_jobArea = new JobArea(m_runner, this);
    m_jobArea->setObjectName(QStringLiteral("jobArea"));
    statusBar()->addPermanentWidget(m_jobArea);
    new TransitionalJobBars(m_loader, m_stats, m_sensitivity, m_analysis, statusBar());
    m_modelLabel = new QLabel(this);
    statusBar()->addPermanentWidget(m_modelLabel);
    showMessage(tr("Ready. Open a model or drop one on the window."), 0);
}

void MainWindow::showMessage(const QString& text, int timeoutMs)
{
    statusBar()->showMessage(text, timeoutMs);
}

QString MainWindow::samplePath()
{
    return OpenActions::samplePath();
}

void MainWindow::openPath(const QString& path)
{
    if (!path.isEmpty())
        m_loader->load(QFileInfo(path).absoluteFilePath());
}

bool MainWindow::isLoading() const
{
    return m_loader->isRunning();
}

QMenu* MainWindow::recentMenu() const
{
    return m_open->recentMenu();
}

QStringList MainWindow::recentFiles() const
{
    return m_open->recent()->paths();
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
    const int index = viewNames().indexOf(name);
    if (index >= 0)
        m_views->setCurrentIndex(index);
    return index >= 0;
}

PlanDocument* MainWindow::planDocument() const
{
    return m_session->document();
}

TierBoardView* MainWindow::tierBoard() const
{
    return m_planPage->tierBoard();
}

FootprintPanel* MainWindow::footprintPanel() const
{
    return m_planPage->footprint();
}

void MainWindow::setRestorePrompt(RestorePrompt prompt)
{
    m_session->setRestorePrompt(std::move(prompt));
}

bool MainWindow::savePlanTo(const QString& path)
{
    return m_session->saveTo(path);
}

void MainWindow::onLoaded(const QString& path, std::shared_ptr<Model> opened)
{
    PlanningModel planning = makePlanningModel(std::move(opened), path.toStdString());
    if (!planning.derivationError.empty())
        showMessage(tr("No tensors derived from %1: %2")
                        .arg(QFileInfo(path).fileName(), QString::fromStdString(planning.derivationError)),
                    10000);
    m_model = std::move(planning.model);
    m_modelPath = path;
    m_selection->reset();
    m_treeModel->setModel(m_model);
    m_summary->setModel(m_model);
    m_analysis->setModel(m_model);
    m_presenter->setModel(m_model);
    m_session->startModel(std::move(planning.layout), path);
    m_analyzeAction->setEnabled(m_analysis->canAnalyze());
    showLoadedModel(path);
    emit modelLoaded(path);
    if (m_analysis->canAnalyze() && QSettings().value(QStringLiteral("analysis/automatic"), true).toBool())
        analyzeModel();
}

void MainWindow::showLoadedModel(const QString& path)
{
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
    m_open->recent()->add(path);
    updateTitle();
    m_modelLabel->setText(tr("%1 · %2 parameters · %3")
                              .arg(QString::fromLatin1(modelFormatName(m_model->format())),
                                   formatCount(m_model->parameterCount()),
                                   formatBytes(m_model->totalBytes())));
    showMessage(
        tr("Opened %1 (%2)")
            .arg(QDir::toNativeSeparators(path), countNoun(m_model->tensors().size(), "tensor", "tensors")),
        8000);
    // Open on something to look at.
    if (const auto first = firstTensorToShow(*m_model))
        selectTensors({QString::fromStdString(m_model->tensors()[*first].name)});
}

void MainWindow::onLoadFailed(const QString& path, const QString& message, const QString& kind)
{
    showMessage(tr("Could not open %1").arg(QFileInfo(path).fileName()), 8000);
    if (!QFileInfo::exists(path))
        m_open->recent()->remove(path);
    QString detail = message;
    if (!kind.isEmpty())
        detail += QStringLiteral("\n\n") + tr("Error kind: %1").arg(kind);
    if (m_model)
        detail += QStringLiteral("\n") + tr("The previously opened model stays open.");
    m_errorPresenter(tr("Cannot Open Model"),
                     tr("Quantscope could not open <b>%1</b>.").arg(path.toHtmlEscaped()), detail);
    emit loadFailed(path, message);
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
    setWindowTitle(m_modelPath.isEmpty() ? tr("Quantscope")
                                         : tr("%1 — Quantscope").arg(QFileInfo(m_modelPath).fileName()));
}

void MainWindow::readSettings()
{
    QSettings settings;
    if (!restoreGeometry(settings.value(QStringLiteral("window/geometry")).toByteArray()))
        resize(1400, 860);
    restoreState(settings.value(QStringLiteral("window/state")).toByteArray());
}

void MainWindow::writeSettings() const
{
    QSettings settings;
    settings.setValue(QStringLiteral("window/geometry"), saveGeometry());
    settings.setValue(QStringLiteral("window/state"), saveState());
}

void MainWindow::closeEvent(QCloseEvent* event)
{
    m_loader->cancel();
    m_stats->cancel();
    // Jobs hold the model and the plan's problem: they end before the window does. waitForAll waits on
    // the workers (which stop at their next cancel check), not on the event loop.
    m_runner->cancelAll();
    m_runner->waitForAll();
    m_views->setCurrentIndex(0); // brings back docks the plan view hid, so the saved layout has them
    writeSettings();
    event->accept();
}

void MainWindow::dragEnterEvent(QDragEnterEvent* event)
{
    if (!OpenActions::pathForDrop(event->mimeData()).isEmpty())
        event->acceptProposedAction();
}

void MainWindow::dropEvent(QDropEvent* event)
{
    const QString path = OpenActions::pathForDrop(event->mimeData());
    if (path.isEmpty())
        return;
    event->acceptProposedAction();
    openPath(path);
}

void MainWindow::analyzeModel()
{
    m_analysis->analyze();
    m_presenter->refresh(); // "Analysing…" where statistics are still to come
}

void MainWindow::cancelAnalysis()
{
    m_analysis->cancelAnalysis();
}

bool MainWindow::isAnalyzing() const
{
    return m_analysis->isAnalyzing();
}

void MainWindow::computeSensitivity()
{
    m_analysis->computeSensitivity();
}

void MainWindow::cancelSensitivity()
{
    m_analysis->cancelSensitivity();
}

bool MainWindow::isComputingSensitivity() const
{
    return m_analysis->isComputingSensitivity();
}

void MainWindow::fitPlanToBudget()
{
    // The measured sensitivity matrix, when complete, replaces the size-based proxy.
    const ErrorTable errors =
        m_sensitivity->isRunning() ? ErrorTable{} : errorTableFromSensitivity(m_sensitivity->results());
    auto* dialog = BudgetDialog::openFor(
        planDocument(), m_runner, errors,
        [this](const QString& t, const QString& x, const QString& d) { m_errorPresenter(t, x, d); }, this);
    if (dialog)
        connect(dialog, &BudgetDialog::fitted, this,
                [this](const QString& text) { showMessage(text, 8000); });
}

void MainWindow::selectTensors(const QStringList& names)
{
    m_selection->select(names);
}

int MainWindow::selectTensorsMatching(const QString& pattern)
{
    if (!m_model)
        return 0;
    const QRegularExpression re(pattern);
    QStringList names;
    for (const auto& t : m_model->tensors())
        if (const QString name = QString::fromStdString(t.name); re.match(name).hasMatch())
            names << name;
    selectTensors(names);
    return int(names.size());
}

QStringList MainWindow::selectedTensors() const
{
    return m_selection->names();
}

} // namespace qs
