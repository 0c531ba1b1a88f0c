#include "app/gui/mainwindow.h"

#include "app/gui/analysiscontrol.h"
#include "app/gui/analysispresenter.h"
#include "app/gui/budgetdialog.h"
#include "app/gui/calibration.h"
#include "app/gui/comparedialog.h"
#include "app/gui/evaluatepanel.h"
#include "app/gui/modelloader.h"
#include "app/gui/openactions.h"
#include "app/gui/planpage.h"
#include "app/gui/plansession.h"
#include "app/gui/quantizedialog.h"
#include "app/gui/recentfiles.h"
#include "core/plan/budget.h"
#include "core/plan/planningmodel.h"
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
#include "widgets/tensorbrowser.h"
#include "widgets/tensortreemodel.h"
#include "widgets/tierboardview.h"

#include <QAction>
#include <QApplication>
#include <QCloseEvent>
#include <QDir>
#include <QDockWidget>
#include <QFileInfo>
#include <QLabel>
#include <QMenuBar>
#include <QMessageBox>
#include <QRegularExpression>
#include <QSettings>
#include <QStatusBar>
#include <QTabWidget>
#include <QToolBar>
#include <QTreeView>

// The resources live in the static quantscope_app library: without a reference, the linker drops them.
static void initResources()
{
    Q_INIT_RESOURCE(resources);
}

namespace qs {

MainWindow::MainWindow(QWidget* parent)
    : QMainWindow(parent), m_loader(new ModelLoader(this)), m_runner(new JobRunner(this)),
      m_errorPresenter(messageBoxPresenter(this)), m_selection(new SelectionHub(this)),
      m_stats(new StatsStore(this)), m_sensitivity(new SensitivityStore(this))
{
    initResources();
    setWindowIcon(QIcon(QStringLiteral(":/icons/quantscope.svg")));
    setAcceptDrops(true);
    setDockNestingEnabled(true);
    // Every long job runs through the window's one runner, so it shows in the one job area.
    m_loader->setJobRunner(m_runner);
    m_stats->setJobRunner(m_runner);
    m_sensitivity->setJobRunner(m_runner);

    // The parts report through whatever presenter is set when the error happens (tests replace it).
    m_presentError = [this](const QString& title, const QString& text, const QString& detail) {
        m_errorPresenter(title, text, detail);
    };
    m_session = new PlanSession(m_presentError, this);
    connect(m_session, &PlanSession::message, this, &MainWindow::showMessage);

    createViews();
    // The presenter first: the plots are up to date when the control reports the end of a run.
    m_presenter = new AnalysisPresenter(m_stats, m_selection, m_histogram, m_channels, this);
    m_analysis = new AnalysisControl(m_stats, m_sensitivity, m_sensitivityView, footprintPanel(), this);
    connect(m_analysis, &AnalysisControl::message, this, &MainWindow::showMessage);
    connect(m_analysis, &AnalysisControl::analysisFinished, this, &MainWindow::analysisFinished);
    connect(m_analysis, &AnalysisControl::sensitivityFinished, this, &MainWindow::sensitivityFinished);
    connect(m_analysis, &AnalysisControl::sensitivityViewRequested, this,
            [this] { showView(QStringLiteral("sensitivity")); });
    m_calibration = new CalibrationControl(m_runner, m_sensitivity, m_presentError, this);
    connect(m_calibration, &CalibrationControl::message, this, &MainWindow::showMessage);
    m_calibration->showActivationsIn(m_channels);
    createActions();
    createStatusBar();

    // The tree and the table show each tensor's planned format and follow every plan edit.
    auto formatOf = [plan = planDocument()](const std::string& name) {
        const auto f = plan->plan().formatOf(name);
        return f ? QString::fromStdString(*f) : QString();
    };
    tensorModel()->setFormatLookup(formatOf);
    m_statsView->tableModel()->setFormatLookup(formatOf);
    connect(planDocument(), &PlanDocument::planChanged, this, [this] {
        tensorModel()->planChanged();
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
    tensorModel()->setFormatLookup({});
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
    auto addView = [this](QWidget* w, const char* name, const QString& title) {
        w->setObjectName(QLatin1String("view:") + QLatin1String(name));
        m_views->addTab(w, title);
    };
    addView(m_browser = new TensorBrowser, "tensors", tr("Tensors"));
    addView(m_statsView = new StatsTableView(m_stats), "statistics", tr("Statistics"));
    addView(m_depth = new DepthView(m_stats), "depth", tr("Depth Overview"));
    m_planPage = new PlanPage(m_session, m_presentError);
    connect(m_planPage, &PlanPage::fitToBudgetRequested, this, &MainWindow::fitPlanToBudget);
    connect(m_planPage, &PlanPage::quantizeRequested, this, &MainWindow::quantize);
    m_views->addTab(m_planPage, tr("Plan"));
    addView(m_sensitivityView = new SensitivityView, "sensitivity", tr("Sensitivity"));
    m_views->addTab(new EvaluatePanel(m_runner, m_session, [this] { return m_model; }, m_sensitivity), tr("Evaluate"));
    setCentralWidget(m_views);
    createDocks();

    // Before the selection hub's connection, so the histogram shows the grid of the clicked format.
    connect(m_sensitivityView, &SensitivityView::cellClicked, this,
            [this](const QString&, const QString& format) {
                m_histogram->setGridFormat(format);
                m_sensitivityView->setBarFormat(format);
            });
    m_selection->attachTree(m_browser->view(), m_browser->treeModel(), m_browser->proxy());
    m_selection->attachStatsTable(m_statsView);
    m_selection->attachDepth(m_depth);
    m_selection->attachTierBoard(m_planPage->tierBoard());
    m_selection->attachSensitivity(m_sensitivityView);
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

    // The plan and the evaluation need the room: the docks step aside while they are shown.
    connect(m_views, &QTabWidget::currentChanged, this, [this](int index) {
        QWidget* view = m_views->widget(index);
        const bool plan = view == m_planPage || view->inherits("qs::EvaluatePanel");
        for (auto* dock : findChildren<QDockWidget*>()) {
            if (plan) {
                if (dock->isVisible())
                    dock->setProperty("shownBeforePlan", true);
                dock->hide();
            } else if (dock->property("shownBeforePlan").toBool()) {
                dock->setProperty("shownBeforePlan", false);
                dock->show();
            }
        }
    });
}

void MainWindow::createActions()
{
    auto* fileMenu = menuBar()->addMenu(tr("&File"));
    m_open = new OpenActions(fileMenu, m_presentError, this);
    connect(m_open, &OpenActions::openRequested, this, &MainWindow::openPath);
    connect(m_open, &OpenActions::lastDirectoryChanged, m_session, &PlanSession::setStartDirectory);
    m_session->setStartDirectory(m_open->lastDirectory());
    fileMenu->addSeparator();
    fileMenu->addAction(tr("&Quantize…"), this, &MainWindow::quantize)->setShortcut(tr("Ctrl+Shift+Q"));
    CompareDialog::addAction(fileMenu, this);
    fileMenu->addAction(tr("&Quit"), this, &QWidget::close)->setShortcut(QKeySequence::Quit);

    auto* editMenu = menuBar()->addMenu(tr("&Edit"));
    editMenu->addAction(m_planPage->undoAction());
    editMenu->addAction(m_planPage->redoAction());

    auto* viewMenu = menuBar()->addMenu(tr("&View"));
    QTreeView* tree = m_browser->view();
    auto* expandAction = viewMenu->addAction(QIcon(QStringLiteral(":/icons/expand.svg")), tr("&Expand All"),
                                             tree, &QTreeView::expandAll);
    auto* collapseAction = viewMenu->addAction(QIcon(QStringLiteral(":/icons/collapse.svg")),
                                               tr("&Collapse All"), tree, &QTreeView::collapseAll);
    viewMenu
        ->addAction(tr("&Filter Tensors"), this,
                    [this] {
                        showView(QStringLiteral("tensors"));
                        m_browser->focusFilter();
                    })
        ->setShortcut(QKeySequence::Find);
    viewMenu->addSeparator();
    for (auto* dock : findChildren<QDockWidget*>())
        viewMenu->addAction(dock->toggleViewAction());

    auto* analysisMenu = menuBar()->addMenu(tr("&Analysis"));
    m_analysis->addActions(analysisMenu);
    analysisMenu->addSeparator();
    m_calibration->addActions(analysisMenu);
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
    toolBar->addAction(m_analysis->analyzeAction());
}

void MainWindow::createStatusBar()
{
    // Every job started through the runner shows here, with its progress, ETA and cancel button.
    m_jobArea = new JobArea(m_runner, this);
    m_jobArea->setObjectName(QStringLiteral("jobArea"));
    statusBar()->addPermanentWidget(m_jobArea);
    m_modelLabel = new QLabel(this);
    statusBar()->addPermanentWidget(m_modelLabel);
    showMessage(tr("Ready. Open a model or drop one on the window."), 0);
}

void MainWindow::showMessage(const QString& text, int timeoutMs)
{
    statusBar()->showMessage(text, timeoutMs);
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
    m_browser->setModel(m_model);
    m_summary->setModel(m_model);
    m_analysis->setModel(m_model);
    m_calibration->setModel(m_model);
    m_presenter->setModel(m_model);
    m_session->startModel(std::move(planning.layout), path);

    m_open->recent()->add(path);
    updateTitle();
    m_modelLabel->setText(tr("%1 · %2 parameters · %3")
                              .arg(QString::fromLatin1(modelFormatName(m_model->format())),
                                   formatCount(m_model->parameterCount()),
                                   formatBytes(m_model->totalBytes())));
    showMessage(tr("Opened %1 (%2)").arg(QDir::toNativeSeparators(path),
                                         countNoun(m_model->tensors().size(), "tensor", "tensors")), 8000);
    if (const auto first = firstTensorToShow(*m_model)) // open on something to look at
        selectTensors({QString::fromStdString(m_model->tensors()[*first].name)});
    emit modelLoaded(path);
    if (m_analysis->canAnalyze() && QSettings().value(QStringLiteral("analysis/automatic"), true).toBool())
        analyzeModel();
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
    // the workers, which stop at their next cancel check, not on the event loop.
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

void MainWindow::fitPlanToBudget()
{
    // The measured sensitivity matrix, when it has every cell, replaces the size-based proxy.
    const ErrorTable errors =
        m_sensitivity->hasEveryCell() ? errorTableFromSensitivity(m_sensitivity->results()) : ErrorTable{};
    if (auto* dialog =
            BudgetDialog::openFor(planDocument(), m_runner, errors, m_presentError, this, footprintPanel()))
        connect(dialog, &BudgetDialog::fitted, this, [this](const QString& text) { showMessage(text, 8000); });
}

QuantizeDialog* MainWindow::quantize()
{
    return QuantizeDialog::showFor(this);
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

// Delegations: the window's public interface stays what tests and the command line use.

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

void MainWindow::setRestorePrompt(RestorePrompt prompt)
{
    m_session->setRestorePrompt(std::move(prompt));
}

bool MainWindow::savePlanTo(const QString& path)
{
    return m_session->saveTo(path);
}

void MainWindow::analyzeModel()
{
    m_analysis->analyze();
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

void MainWindow::selectTensors(const QStringList& names)
{
    m_selection->select(names);
}

QStringList MainWindow::selectedTensors() const
{
    return m_selection->names();
}

} // namespace qs
